import { register } from 'node:module';
import { reportError } from '../control/error-channel.js';

register('./skybatch-hooks.js', import.meta.url);
// The script's uncaught error (a failed job, a bug of its own) also goes, structured, to
// whoever asked for it (SKYBATCH_ERROR_FD); Node still prints it to stderr and exits 1.
process.on('uncaughtExceptionMonitor', (err) => reportError(err));
