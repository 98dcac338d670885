import { PNG } from 'pngjs';

const MAX_IMAGE_BYTES = 256 * 1024;
const MAX_STRING = 500;
const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

/**
 * A JSON-safe, size-bounded copy of a result for the live "sample outputs" view: long
 * strings are cut, PNG images become data URLs (`{ $image }`), other binary becomes a size.
 */
export function previewValue(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return value.length > MAX_STRING ? value.slice(0, MAX_STRING) + '…' : value;
  if (typeof value === 'bigint') return value.toString();
  if (value === null || typeof value !== 'object') return typeof value === 'function' ? '[function]' : value;
  if (value instanceof Uint8Array) {
    const isPng = PNG_MAGIC.every((b, i) => value[i] === b);
    if (isPng && value.length <= MAX_IMAGE_BYTES) return { $image: `data:image/png;base64,${Buffer.from(value).toString('base64')}` };
    return { $binary: value.length };
  }
  const v = value as { width?: unknown; height?: unknown; data?: unknown };
  if (typeof v.width === 'number' && typeof v.height === 'number' && v.data instanceof Uint8Array && v.width * v.height <= 512 * 512) {
    try {
      const png = new PNG({ width: v.width, height: v.height });
      png.data = Buffer.from(v.data);
      return previewValue(PNG.sync.write(png), depth);
    } catch {
      return { $binary: v.data.length };
    }
  }
  if (depth > 4) return '[…]';
  if (Array.isArray(value)) return value.slice(0, 20).map((x) => previewValue(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(value).slice(0, 30)) out[k] = previewValue(x, depth + 1);
  return out;
}
