import type * as vscode from 'vscode';
import type { JobViewState } from './core/job-tracker.js';
import type { ScriptMap } from './core/script-map.js';

/** The last run of a notebook: enough to reattach to it or show its summary after a reload. */
export interface JobRecord {
  notebook: string;
  /** Index of the cell that shows the job's output. */
  cell: number;
  pool: string;
  jobId?: string;
  state: JobViewState;
  /** Where the run's generated script lines came from: a reattached run that fails maps its error back to cells. */
  script?: ScriptMap;
}

const KEY = 'skybatch.jobRecords';
const MAX_RECORDS = 200;

/** Per-workspace memory of each notebook's last job (VS Code's workspaceState: survives reloads). */
export class JobRecords {
  constructor(private readonly memento: vscode.Memento) {}

  private all(): JobRecord[] {
    return this.memento.get<JobRecord[]>(KEY, []);
  }

  get(notebook: string): JobRecord | undefined {
    return this.all().find((r) => r.notebook === notebook);
  }

  byJob(jobId: string): JobRecord | undefined {
    return this.all().find((r) => r.jobId === jobId);
  }

  async put(r: JobRecord): Promise<void> {
    const rest = this.all().filter((x) => x.notebook !== r.notebook);
    await this.memento.update(KEY, [...rest, r].slice(-MAX_RECORDS));
  }
}
