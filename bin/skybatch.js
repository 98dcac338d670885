#!/usr/bin/env node
import '../out/runtime/cli/main.js';
