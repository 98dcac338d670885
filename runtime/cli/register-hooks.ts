import { register } from 'node:module';

register('./skybatch-hooks.js', import.meta.url);
