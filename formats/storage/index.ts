export * from './storage.js';
export { LocalStorage } from './local.js';
