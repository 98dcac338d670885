// Preloaded into a mapper process (`--import`, before its own modules compile): see young-generation.ts.
import * as v8 from 'node:v8';

v8.setFlagsFromString('--semi-space-growth-factor=1');
