import type { NotebookCellData } from './notebook-format.js';

/** The cells of a new Batch Job: a JSONL file in, a doubled text out, on a local pool. */
export function templateCells(name: string): NotebookCellData[] {
  return [
    {
      kind: 'markdown',
      source: `# ${name}\n\nA batch job: the **reader** yields items, the **mapper** runs on the pool's workers batch by batch, the **writers** store the results. Paths are relative to this notebook's folder. Run the notebook (Run All) to submit the job; it offers to start the pool from \`pool.yaml\` when it is not running.`,
    },
    { kind: 'code', role: 'reader', language: 'typescript', source: "new sky.JsonReader('data.jsonl')" },
    {
      kind: 'code',
      role: 'mapper',
      language: 'typescript',
      source: "// One-time setup here runs once per worker per job.\nfor await (const batch of sky.load()) {\n  await sky.saveResults(batch.map((item) => ({ output: String(item.text).repeat(2) })));\n}",
    },
    { kind: 'code', role: 'writers', language: 'typescript', source: "new sky.JsonWriter('output/output.jsonl')" },
    { kind: 'code', role: 'run', language: 'yaml', source: `pool: local-pool\nbatchSize: 2\npoolFile: pool.yaml` },
  ];
}

export const TEMPLATE_DATA = ['hello', 'world', 'sky', 'batch'].map((text) => JSON.stringify({ text })).join('\n') + '\n';

export const TEMPLATE_POOL = '# A local pool: workers are processes on this machine; setup runs once per worker.\npool:\n  workers: 2\n\nresources:\n  cpus: 1+\n\nsetup: echo "Setup complete!"\n';
