import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Identifies the installed skybatch code: its version plus the build time of this file.
 * Long-running processes (coordinator, worker agent) record it at start, so a process
 * they spawn later from an upgraded installation can tell, and say so, instead of
 * speaking a different protocol.
 */
export function buildId(): string {
  const file = fileURLToPath(import.meta.url);
  return `${PACKAGE_VERSION}+${Math.floor(fs.statSync(file).mtimeMs)}`;
}

/** The version in skybatch's package.json (this file is at out/runtime/ once built). */
export const PACKAGE_VERSION = (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
