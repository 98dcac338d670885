// The notebook output renderer of a job's cell output (mime OUTPUT_MIME). The HTML comes
// from extension/core/output-render.ts; this adds what HTML in a notebook output cannot do
// alone: its links open files, run Sky Batch commands and go to cells, which notebook
// outputs may not do through `command:` links. A click posts the link's data-skybatch-*
// attributes to the extension (extension/output-links.ts), which acts on them.
import type { FromOutput } from './messages.js';

interface OutputItem {
  text(): string;
}
interface RendererContext {
  postMessage?(message: FromOutput): void;
}

function messageOf(a: HTMLElement): FromOutput | undefined {
  const d = a.dataset;
  if (d.skybatchOpen) return { type: 'open', path: d.skybatchOpen };
  if (d.skybatchReveal) return { type: 'reveal', path: d.skybatchReveal };
  if (d.skybatchCommand && d.skybatchJob) return { type: 'command', command: d.skybatchCommand as 'recover' | 'resume' | 'panel', jobId: d.skybatchJob };
  if (d.skybatchGoto) return { type: 'goto', cell: Number(d.skybatchGoto), line: Number(d.skybatchLine ?? 0) };
  return undefined;
}

export function activate(ctx: RendererContext) {
  return {
    renderOutputItem(item: OutputItem, element: HTMLElement): void {
      element.innerHTML = item.text();
      const act = (ev: Event) => {
        const a = (ev.target as HTMLElement | null)?.closest<HTMLElement>('a.skybatch-link');
        const msg = a && messageOf(a);
        if (!msg) return;
        ev.preventDefault();
        ev.stopPropagation();
        ctx.postMessage?.(msg);
      };
      element.onclick = act;
      element.onkeydown = (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') act(ev);
      };
    },
  };
}
