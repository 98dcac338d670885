export * from './storage.js';
export { LocalStorage } from './local.js';
export { storageFor } from './factory.js';
