#!/usr/bin/env node
// Runs the Firebase Storage emulator (GCS JSON API) in this process.
// Usage: node gcs-emulator.mjs --port PORT [--project ID]
// firebase-tools comes from SKYBATCH_FIREBASE_DIR (default <repo>/.cache/firebase), pinned to
// 15.34.2 because StorageEmulator and EmulatorRegistry are internal API. Blobs go under
// $TMPDIR/firebase/storage/blobs, so the caller sets TMPDIR.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
const fbDir = process.env.SKYBATCH_FIREBASE_DIR ?? path.join(here, '..', '..', '.cache', 'firebase');
const require = createRequire(path.join(path.resolve(fbDir), 'package.json'));

const { values } = parseArgs({ options: { port: { type: 'string' }, project: { type: 'string', default: 'skybatch-test' } } });
const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0) {
  console.error('gcs-emulator: --port PORT is required');
  process.exit(2);
}

const { StorageEmulator } = require('firebase-tools/lib/emulator/storage');
const { EmulatorRegistry } = require('firebase-tools/lib/emulator/registry');

const emulator = new StorageEmulator({ projectId: values.project, host: '127.0.0.1', port, rules: [], auto_download: false });
// The rules runtime needs Java and a download; the GCS JSON API routes never evaluate rules.
emulator._rulesRuntime.start = async () => {};
emulator._rulesRuntime.stop = async () => {};
await EmulatorRegistry.start(emulator);
console.log(`gcs-emulator: listening on http://127.0.0.1:${port} (project ${values.project})`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  const force = setTimeout(() => process.exit(0), 3000);
  force.unref();
  try {
    await emulator.stop();
  } finally {
    process.exit(0);
  }
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
