import { BatchRef, normalizeColumns, requireColumn, writerOptions } from './columns.js';
import { eachLimit } from './concurrency.js';
import { SkybatchError } from './common/errors.js';
import { lazyRequire } from './common/lazy-require.js';
import { Item } from './input-reader.js';
import { OutputWriter } from './output-writer.js';
import { assertSafeKey, joinPath, pad8 } from './common/paths.js';
import { mergeBatches } from './batch-merge.js';
import { deleteBatchFiles, downloadBytesFromCloud, getBatchPath, listBatchFiles, loadJsonlFromCloud, toJsonlBytes, uploadBytesToCloud } from './utils.js';

export interface ImageWriterOptions {
  /** The result key holding the image. Default `'image'`. */
  column?: string;
}

/** Raw RGBA pixels, 4 bytes a pixel, row by row. */
export interface RgbaImage {
  width: number;
  height: number;
  data: Uint8Array;
}

const pngjs = lazyRequire<typeof import('pngjs')>('pngjs');

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const UPLOAD_CONCURRENCY = 8;

/** The index ImageWriter writes beside its PNGs. The leading underscore keeps it apart from any name a user's own writer would pick. */
export const IMAGE_INDEX_NAME = '_manifest.jsonl';
/** The file names ImageWriter publishes in its folder. */
export const IMAGE_FILE_RE = /^\d{8,}\.png$/;

/**
 * One PNG per item at `{dir}/{globalIndex:08d}.png`, plus `{dir}/_manifest.jsonl` mapping
 * each file name to its row index. A missing or invalid image fails its batch naming the
 * item; it is never a silent gap. Images appear in `{dir}` when the job's outputs are
 * reduced (or recovered), never from an attempt that lost. Batches are staged in the
 * writer's own temp folder (`.sky_batch_tmp/{jobId}/{dir name}/`), like any writer's.
 */
export class ImageWriter extends OutputWriter<ImageWriterOptions> {
  /** `options` may also be the column itself, as in the reference: `new ImageWriter(dir, 'image')`. */
  constructor(path: string, options: ImageWriterOptions | string | [string] = {}) {
    const opts = writerOptions<{ column?: unknown }>(options, `ImageWriter(${path})`, ['column'], new.target === ImageWriter);
    const columns = normalizeColumns(opts.column, `ImageWriter(${path})`);
    if (columns && columns.length > 1) {
      throw new SkybatchError('SKYBATCH_E_BAD_OPTION', `ImageWriter(${path}): writes one image column, got ${JSON.stringify(opts.column)}; use one ImageWriter per column`, {
        context: { field: 'column' },
      });
    }
    super(path, columns ? { ...opts, column: columns[0] } : (opts as ImageWriterOptions));
  }

  get column(): string {
    return this.options.column ?? 'image';
  }

  private get manifestPath(): string {
    return joinPath(this.path, IMAGE_INDEX_NAME);
  }

  async uploadBatch(results: Item[], startIdx: number, endIdx: number, jobId: string): Promise<string> {
    const at: BatchRef = { jobId, startIdx, endIdx };
    // Encode everything first: a bad item fails the batch before any file is written.
    const pngs = results.map((r, i) => toPng(requireColumn(r, this.column, i, at, `ImageWriter(${this.path})`), startIdx + i, at, this.column));
    const names = pngs.map((_, i) => `${pad8(startIdx + i)}.png`);
    // Images are staged beside this attempt's manifest and published by reduceResults, so
    // only the winning attempt of each batch ever reaches {dir}. The manifest is written last:
    // a batch file that exists has all its images.
    const manifestBatch = getBatchPath(this.path, startIdx, endIdx, jobId);
    await eachLimit(names, UPLOAD_CONCURRENCY, (name, i) => uploadBytesToCloud(pngs[i], joinPath(stagingDir(manifestBatch), name)));
    const manifest = names.map((file, i) => ({ file, index: startIdx + i }));
    await uploadBytesToCloud(toJsonlBytes(manifest, this.manifestPath), manifestBatch);
    return this.path;
  }

  /** Publishes the winning attempts' images to `{dir}`, then merges the manifest. */
  override async reduceResults(jobId: string | number): Promise<void> {
    for (const batchFile of await listBatchFiles(this.path, jobId)) {
      const entries = (await loadJsonlFromCloud(batchFile)) as { file: string }[];
      await eachLimit(entries, UPLOAD_CONCURRENCY, async ({ file }) => {
        assertSafeKey(file, 'image file name');
        await uploadBytesToCloud(await downloadBytesFromCloud(joinPath(stagingDir(batchFile), file)), joinPath(this.path, file));
      });
    }
    await mergeBatches(this.path, this.manifestPath, jobId, { checkRows: true });
  }

  override async cleanup(jobId: string | number): Promise<void> {
    await deleteBatchFiles(this.path, jobId);
  }
}

function stagingDir(manifestBatchPath: string): string {
  return manifestBatchPath.replace(/\.jsonl$/, '.files');
}


function toPng(value: unknown, index: number, at: BatchRef, column: string): Buffer {
  const fail = (why: string) =>
    new SkybatchError('SKYBATCH_E_BAD_IMAGE', `ImageWriter: item ${index}, column '${column}': ${why} (job ${at.jobId}, batch [${at.startIdx}, ${at.endIdx}])`, {
      context: { jobId: at.jobId, batch: [at.startIdx, at.endIdx], field: column },
    });
  if (value instanceof Uint8Array) {
    const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    if (buf.length < 33 || !buf.subarray(0, 8).equals(PNG_SIGNATURE)) throw fail(`${buf.length} bytes that are not a PNG (bad signature)`);
    return buf;
  }
  if (value && typeof value === 'object' && 'width' in value && 'height' in value && 'data' in value) {
    const { width, height, data } = value as RgbaImage;
    if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) throw fail(`width and height must be positive integers, got ${width}x${height}`);
    if (!(data instanceof Uint8Array)) throw fail(`'data' must be a Uint8Array of RGBA pixels`);
    if (data.length !== width * height * 4) throw fail(`'data' has ${data.length} bytes, expected ${width}x${height}x4 = ${width * height * 4}`);
    const { PNG } = pngjs();
    const png = new PNG({ width, height });
    png.data = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return PNG.sync.write(png);
  }
  const got = value === null ? 'null' : value === undefined ? 'undefined' : typeof value === 'object' ? `an object without width/height/data` : typeof value;
  throw fail(`expected PNG bytes or { width, height, data } with RGBA pixels, got ${got}`);
}
