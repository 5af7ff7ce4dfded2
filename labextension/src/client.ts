/**
 * One typed client for the whole `/etl-nb/api/` REST API.
 *
 * Every call goes through one `Requester`; in JupyterLab that is
 * `ServerConnection.makeRequest` (see index.ts), so Jupyter's token and XSRF
 * handling apply to each request. Tests pass a fake one.
 */
import { INewSchedule, IPipeline, IRun, ISchedule, IStartedRun, IVersion } from './model';

/** Sends `init` to the API path (relative to `/etl-nb/api/`) and resolves with the response. */
export type Requester = (path: string, init: RequestInit) => Promise<Response>;

/** Why a call failed, in a sentence for the panel. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    /** True when the server has no etl_nb extension at all (the route is unknown). */
    readonly missingExtension = false
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export const MISSING_EXTENSION =
  'The etl_nb server extension is not running in this Jupyter server. Install etl_nb in the ' +
  'environment JupyterLab runs from (pip install etl_nb), check `jupyter server extension list` ' +
  'shows etl_nb.server enabled, then restart JupyterLab.';

export class EtlNbClient {
  constructor(private readonly request: Requester) {}

  /** `GET version`. */
  version(): Promise<IVersion> {
    return this.call<IVersion>('version');
  }

  /** `GET pipelines`: every notebook with `%etl` cells under the server's root. */
  async pipelines(): Promise<IPipeline[]> {
    return (await this.call<{ pipelines: IPipeline[] }>('pipelines')).pipelines;
  }

  /** `GET runs[?pipeline=&limit=]`: recent runs, newest first. */
  async runs(options: { pipeline?: string; limit?: number } = {}): Promise<IRun[]> {
    const query = new URLSearchParams();
    if (options.pipeline) {
      query.set('pipeline', options.pipeline);
    }
    if (options.limit) {
      query.set('limit', String(options.limit));
    }
    const suffix = query.toString() ? `?${query}` : '';
    return (await this.call<{ runs: IRun[] }>(`runs${suffix}`)).runs;
  }

  /** `GET runs/ID`: one run with its steps. */
  run(id: string): Promise<IRun> {
    return this.call<IRun>(`runs/${encodeURIComponent(id)}`);
  }

  /** `POST runs`: start a recorded run of `notebook` (a path under the server's root). */
  startRun(notebook: string, params: Record<string, unknown> = {}): Promise<IStartedRun> {
    return this.call<IStartedRun>('runs', { method: 'POST', body: JSON.stringify({ notebook, params }) });
  }

  /** `GET schedules`. */
  async schedules(): Promise<ISchedule[]> {
    return (await this.call<{ schedules: ISchedule[] }>('schedules')).schedules;
  }

  /** `POST schedules`: run `notebook` on `cron` in `timezone`. */
  addSchedule(schedule: INewSchedule): Promise<ISchedule> {
    return this.call<ISchedule>('schedules', { method: 'POST', body: JSON.stringify(schedule) });
  }

  /** `PATCH schedules/ID`: pause (`true`) or resume (`false`). */
  setPaused(id: string, paused: boolean): Promise<ISchedule> {
    return this.call<ISchedule>(`schedules/${encodeURIComponent(id)}`, {
      method: 'PATCH',
      body: JSON.stringify({ paused })
    });
  }

  /** `DELETE schedules/ID`. */
  removeSchedule(id: string): Promise<ISchedule> {
    return this.call<ISchedule>(`schedules/${encodeURIComponent(id)}`, { method: 'DELETE' });
  }

  /** The API path of a run's executed notebook page. */
  static notebookPath(id: string, theme: 'light' | 'dark'): string {
    return `runs/${encodeURIComponent(id)}/notebook?theme=${theme}`;
  }

  private async call<T>(path: string, init: RequestInit = {}): Promise<T> {
    let response: Response;
    try {
      response = await this.request(path, init);
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ApiError(`Cannot reach the Jupyter server (${reason}). Is it still running?`, null);
    }
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (response.ok) {
      if (body === null && text) {
        throw new ApiError(`The server answered ${path} with something that is not JSON.`, response.status);
      }
      return body as T;
    }
    const message = (body as { message?: unknown } | null)?.message;
    if (response.status === 404 && typeof message !== 'string') {
      // Jupyter's own 404 page: no handler for /etl-nb/api/ at all.
      throw new ApiError(MISSING_EXTENSION, 404, true);
    }
    if (response.status === 403 && (typeof message !== 'string' || message === 'Forbidden')) {
      throw new ApiError(
        'The Jupyter server refused the request (403): your session may have expired. Reload the page and log in again.',
        403
      );
    }
    throw new ApiError(
      typeof message === 'string' && message
        ? message
        : `The etl_nb API failed (${response.status} ${response.statusText}).`,
      response.status
    );
  }
}
