import { SkybatchError } from '../formats/common/errors.js';
import type { Item } from '../formats/input-reader.js';
import { captureSite } from './mapper-site.js';

/** A function marked with `remoteFunction`: runs on workers, once per worker per job. */
export type MapperFn = () => unknown | Promise<unknown>;

const MAPPER = Symbol.for('skybatch.mapper');

/** How a mapper is known: `name#n`, and where it was created (see mapper-site.ts). */
export interface MapperInfo {
  id: string;
  definedIn?: string;
  /** The user's stack frames at `remoteFunction(...)`, innermost first. */
  site: string[];
  /** How many mappers were created at the same site before this one (a loop). */
  ordinal: number;
}

export interface RemoteFunction extends MapperFn {
  [MAPPER]: MapperInfo;
}

const byId = new Map<string, MapperFn>();
const perName = new Map<string, number>();
const bySite = new Map<string, MapperFn[]>();

/**
 * Marks `fn` as a mapper. Its body runs on workers: one-time setup first, then
 * `for await (const batch of load())` with one `saveResults` per batch.
 * Its id is its name and how many mappers of that name came before it, which is the
 * same wherever the script runs.
 */
export function remoteFunction<F extends MapperFn>(fn: F): F & RemoteFunction {
  if (typeof fn !== 'function') {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `remoteFunction() needs a function, got ${typeof fn}`);
  }
  const name = fn.name || 'anonymous';
  const k = perName.get(name) ?? 0;
  perName.set(name, k + 1);
  const id = `${name}#${k}`;
  const site = captureSite(remoteFunction);
  const key = site.join(' < ');
  const same = bySite.get(key) ?? [];
  bySite.set(key, [...same, fn]);
  const rf = fn as F & RemoteFunction;
  rf[MAPPER] = { id, definedIn: site[0]?.replace(/:\d+:\d+$/, ''), site, ordinal: same.length };
  byId.set(id, fn);
  return rf;
}

export function mapperInfo(fn: unknown): MapperInfo {
  const info = typeof fn === 'function' ? (fn as Partial<RemoteFunction>)[MAPPER] : undefined;
  if (!info) {
    throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `map() needs a function wrapped in sky.remoteFunction(...) or a Python mapper from sky.pythonFunction('mapper.py', 'name'), got ${typeof fn === 'function' ? `plain function ${fn.name || ''}` : typeof fn}`, {
      context: { field: 'mapperFn' },
    });
  }
  return info;
}

export function mapperById(id: string): MapperFn | undefined {
  return byId.get(id);
}

/** The one mapper of this name, if exactly one was created. */
export function onlyMapperNamed(name: string): MapperFn | undefined {
  const fns = [...byId.entries()].filter(([id]) => id.replace(/#\d+$/, '') === name);
  return fns.length === 1 ? fns[0][1] : undefined;
}

/** The mapper created at `site` (the same frames the client saw), the `ordinal`-th one there. */
export function mapperBySite(site: readonly string[], ordinal: number): MapperFn | undefined {
  return site.length ? bySite.get(site.join(' < '))?.[ordinal] : undefined;
}

const FAILED_ITEM = Symbol.for('skybatch.failedItem');

/** A result standing for an item the mapper could not process. */
export interface FailedItem {
  [FAILED_ITEM]: true;
  error: Error;
}

/**
 * Marks one item as failed, in place of its result: `saveResults(batch.map((x) => { try {
 * return f(x) } catch (e) { return sky.failItem(e) } }))`. With `onItemError: 'skip'` the
 * item goes to errors.jsonl and the rest of the batch is written; with 'fail' (default)
 * the batch fails with this error.
 */
export function failItem(error: unknown): FailedItem {
  return { [FAILED_ITEM]: true, error: error instanceof Error ? error : new Error(String(error)) };
}

export function isFailedItem(v: unknown): v is FailedItem {
  return typeof v === 'object' && v !== null && (v as Partial<FailedItem>)[FAILED_ITEM] === true;
}

/** What `load()` and `saveResults()` talk to inside a mapper process. */
export interface MapperContext {
  load(): AsyncIterable<Item[]>;
  saveResults(results: unknown[]): Promise<void>;
}

let context: MapperContext | undefined;

export function setMapperContext(ctx: MapperContext | undefined): void {
  context = ctx;
}

function requireContext(what: string): MapperContext {
  if (!context) {
    throw new SkybatchError('SKYBATCH_E_SAVE_RESULTS', `sky.${what}() only works inside a mapper running on a worker (a function passed to ds.map)`);
  }
  return context;
}

/**
 * Yields this worker's batches of the job, one array of items at a time:
 * `for await (const batch of sky.load())`. Waiting for a batch is asynchronous, so a plain
 * `for (... of sky.load())` (the reference's Python loop) is refused with that advice.
 */
export function load(): AsyncIterable<Item[]> {
  const batches = requireContext('load').load();
  Object.defineProperty(batches, Symbol.iterator, {
    value: () => {
      throw new SkybatchError('SKYBATCH_E_SAVE_RESULTS', 'sky.load() yields batches asynchronously: write `for await (const batch of sky.load())`, not `for (const batch of sky.load())`');
    },
  });
  return batches;
}

/** Saves one result per item of the current batch, in input order. */
export function saveResults(results: unknown[]): Promise<void> {
  return requireContext('saveResults').saveResults(results);
}

/**
 * Where this process runs: 'client' (the user's script) or 'host' (a worker's mapper
 * process, or the coordinator's reduce step), where `Dataset.map` must not submit jobs.
 */
let role: 'client' | 'host' = 'client';
let mapReached: () => void = () => {};
const mapReachedPromise = new Promise<void>((resolve) => (mapReached = resolve));

export function becomeHost(): Promise<void> {
  role = 'host';
  return mapReachedPromise;
}

export function isHost(): boolean {
  return role === 'host';
}

/** Called by `Dataset.map` on a host: the script's definitions up to its first map are in place. */
export function signalMapReached(): void {
  mapReached();
}
