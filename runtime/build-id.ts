import { createHash } from 'node:crypto';
import * as fs from 'node:fs';

/** The version in skybatch's package.json (this file is at out/runtime/ once built). */
export const PACKAGE_VERSION = (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

// The code on both sides of the agent ↔ mapper-process and coordinator ↔ worker channels.
const PROTOCOL_FILES = ['./protocol.js', './worker/agent.js', './worker/mapper-process.js'];

/**
 * Identifies the installed skybatch code: its version plus a hash of the files that speak
 * its internal protocols. Long-running processes (coordinator, worker agent) record it at
 * start, so a process they spawn later from an upgraded installation can tell, and say
 * so, instead of speaking a different protocol. Rebuilding identical code keeps the id.
 */
export function buildId(): string {
  const h = createHash('sha256');
  for (const f of PROTOCOL_FILES) h.update(fs.readFileSync(new URL(f, import.meta.url)));
  return `${PACKAGE_VERSION}+${h.digest('hex').slice(0, 12)}`;
}
