/**
 * The panel's logic without the DOM: the API's shapes, the DAG layout,
 * labels, formatting and the parameters form's values. Pure functions, so
 * they are unit-tested under node (labextension/src/tests/).
 */

/** The API version this panel speaks (`GET version` answers the server's). */
export const API_VERSION = 1;

export type RunStatus = 'queued' | 'running' | 'success' | 'failed' | 'warned' | string;

export interface IVersion {
  version: string;
  api_version: number;
}

export interface IStep {
  id: string;
  verb: 'extract' | 'transform' | 'check' | 'load';
  cell: number | null;
  name?: string;
  source?: string;
  python?: boolean;
  step?: string;
  to?: string;
  target?: string;
  mode?: string;
  warn?: boolean;
}

export interface IParameter {
  name: string;
  default: unknown;
  type: 'str' | 'int' | 'float' | 'bool' | 'null' | null;
}

export interface IProblem {
  cell: number | null;
  message: string;
  step: string | null;
}

export interface IStepStatus {
  status: RunStatus;
  rows: number | null;
}

export interface ILastRun {
  id: string;
  status: RunStatus;
  started_at: string;
  seconds: number | null;
  rows: number | null;
  steps: Record<string, IStepStatus>;
}

export interface IPipeline {
  path: string;
  name: string;
  steps: IStep[];
  edges: [string, string][];
  parameters: IParameter[];
  problems: IProblem[];
  last_run: ILastRun | null;
}

export interface IStepRun {
  step: string;
  kind: string;
  status: RunStatus;
  rows: number | null;
  seconds: number | null;
  error: string | null;
}

export interface IRun {
  id: string;
  pipeline: string;
  status: RunStatus;
  params: Record<string, unknown>;
  started_at: string;
  finished_at: string | null;
  seconds: number | null;
  rows: number | null;
  error: string | null;
  trigger: string;
  notebook_path?: string | null;
  has_output?: boolean;
  steps: IStepRun[];
}

export interface IStartedRun {
  id: string;
  status: RunStatus;
  pipeline: string;
}

export interface ISchedule {
  id: string;
  notebook: string;
  notebook_path: string | null;
  pipeline: string;
  cron: string;
  timezone: string;
  params: Record<string, unknown>;
  paused: boolean;
  next_slot: string | null;
  last_run: { id?: string; status?: RunStatus } | null;
}

export interface INewSchedule {
  notebook: string;
  cron: string;
  timezone: string;
  params?: Record<string, unknown>;
}

/** The zone a new schedule starts with: the browser's own, else UTC. */
export function defaultTimezone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

/** The IANA zones the browser knows, for the zone field's suggestions. */
export function knownTimezones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  const zones = intl.supportedValuesOf ? intl.supportedValuesOf('timeZone') : [];
  return zones.includes('UTC') ? zones : ['UTC', ...zones];
}

/** A schedule's next slot in its own zone, as the server gives it: `2026-12-02 06:00 (Europe/Paris)`. */
export function formatSlot(schedule: ISchedule): string {
  if (schedule.paused) {
    return 'paused';
  }
  if (!schedule.next_slot) {
    return 'no next slot';
  }
  return `next ${schedule.next_slot.slice(0, 16).replace('T', ' ')} (${schedule.timezone})`;
}

/** A cron field's obvious mistakes, before the server checks it for real; null when it looks right. */
export function cronProblem(cron: string): string | null {
  const text = cron.trim();
  if (!text) {
    return 'Give a cron expression, e.g. 0 6 * * * (every day at 06:00).';
  }
  if (text.startsWith('@')) {
    return null;
  }
  const fields = text.split(/\s+/).length;
  return fields === 5 || fields === 6
    ? null
    : `A cron expression has 5 fields (minute hour day month weekday), not ${fields}: e.g. 0 6 * * *.`;
}

/** A run that is still going: the panel refreshes while one exists. */
export function isActive(status: RunStatus): boolean {
  return status === 'queued' || status === 'running';
}

/** The CSS modifier for a status (unknown ones look neutral). */
export function statusClass(status: RunStatus | undefined): string {
  const known = ['queued', 'running', 'success', 'failed', 'warned', 'skipped'];
  return `etl-nb-status-${status && known.includes(status) ? status : 'none'}`;
}

/** What a DAG node says: the step name, or what a check or load does. */
export function stepLabel(step: IStep): string {
  switch (step.verb) {
    case 'check':
      return `check ${step.step}`;
    case 'load':
      return `load ${step.step} → ${step.to}`;
    default:
      return step.name ?? step.id;
  }
}

/** A run's step id (`load:revenue:lake:out.parquet`) as short text: `load revenue → lake`. */
export function stepIdLabel(id: string): string {
  const [verb, step, to] = id.split(':');
  if (verb === 'load' && step && to) {
    return `load ${step} → ${to}`;
  }
  if (verb === 'check' && step) {
    return `check ${step}`;
  }
  return id;
}

/** A longer description for the node's tooltip and screen readers. */
export function stepDescription(step: IStep, status?: IStepStatus): string {
  const parts: string[] = [];
  if (step.verb === 'extract') {
    parts.push(`extract ${step.name} from ${step.source}`);
  } else if (step.verb === 'transform') {
    parts.push(`transform ${step.name}${step.python ? ' (Python)' : ' (SQL)'}`);
  } else if (step.verb === 'load') {
    parts.push(`load ${step.step} into ${step.to}:${step.target} (${step.mode})`);
  } else {
    parts.push(`check ${step.step}${step.warn ? ' (warn only)' : ''}`);
  }
  if (step.cell !== null) {
    parts.push(`cell ${step.cell}`);
  }
  if (status) {
    parts.push(`last run: ${status.status}${status.rows === null ? '' : `, ${formatRows(status.rows)}`}`);
  }
  return parts.join(' · ');
}

export interface INodeBox {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
  layer: number;
}

export interface IDagLayout {
  nodes: INodeBox[];
  edges: { from: string; to: string; path: string }[];
  width: number;
  height: number;
}

const NODE_WIDTH = 104;
const NODE_HEIGHT = 26;
const GAP_X = 12;
const GAP_Y = 26;
const MARGIN = 4;

/**
 * A layered top-to-bottom layout: each step sits one row below its deepest
 * input; within a row steps keep the notebook's order. Good enough for the
 * graphs notebooks make, and no graph library in the bundle.
 */
export function layoutDag(steps: IStep[], edges: [string, string][]): IDagLayout {
  const ids = steps.map(s => s.id);
  const known = new Set(ids);
  const inputs = new Map<string, string[]>(ids.map(id => [id, []]));
  for (const [from, to] of edges) {
    if (known.has(from) && known.has(to)) {
      inputs.get(to)!.push(from);
    }
  }
  const layer = new Map<string, number>();
  const depth = (id: string, seen: Set<string>): number => {
    const cached = layer.get(id);
    if (cached !== undefined) {
      return cached;
    }
    if (seen.has(id)) {
      return 0; // a cycle: the server reports it as a problem; draw it flat
    }
    seen.add(id);
    const ups = inputs.get(id) ?? [];
    const value = ups.length ? Math.max(...ups.map(u => depth(u, seen))) + 1 : 0;
    layer.set(id, value);
    return value;
  };
  ids.forEach(id => depth(id, new Set()));
  const rows: string[][] = [];
  for (const id of ids) {
    const row = layer.get(id)!;
    (rows[row] ??= []).push(id);
  }
  const widest = Math.max(1, ...rows.map(r => r?.length ?? 0));
  const width = MARGIN * 2 + widest * NODE_WIDTH + (widest - 1) * GAP_X;
  const boxes = new Map<string, INodeBox>();
  rows.forEach((row, index) => {
    if (!row) {
      return;
    }
    const rowWidth = row.length * NODE_WIDTH + (row.length - 1) * GAP_X;
    const left = (width - rowWidth) / 2;
    row.forEach((id, position) => {
      boxes.set(id, {
        id,
        x: left + position * (NODE_WIDTH + GAP_X),
        y: MARGIN + index * (NODE_HEIGHT + GAP_Y),
        width: NODE_WIDTH,
        height: NODE_HEIGHT,
        layer: index
      });
    });
  });
  const height = rows.length ? MARGIN * 2 + rows.length * NODE_HEIGHT + (rows.length - 1) * GAP_Y : 0;
  const drawn = edges
    .filter(([from, to]) => boxes.has(from) && boxes.has(to))
    .map(([from, to]) => {
      const a = boxes.get(from)!;
      const b = boxes.get(to)!;
      const x1 = a.x + a.width / 2;
      const y1 = a.y + a.height;
      const x2 = b.x + b.width / 2;
      const y2 = b.y;
      const bend = (y2 - y1) / 2;
      return { from, to, path: `M${x1},${y1} C${x1},${y1 + bend} ${x2},${y2 - bend} ${x2},${y2}` };
    });
  return { nodes: ids.map(id => boxes.get(id)!), edges: drawn, width, height };
}

/** Seconds as people read a run's duration: `35 ms`, `2.4 s`, `12 s`, `3 min 5 s`, `1 h 2 min`. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds)) {
    return '—';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  const whole = Math.round(seconds);
  if (whole < 60) {
    return `${whole} s`;
  }
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) {
    return `${minutes} min ${whole % 60} s`;
  }
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** A row count with thousands separators, `1 row` / `1,234 rows`; `—` when unknown. */
export function formatRows(rows: number | null | undefined): string {
  if (rows === null || rows === undefined) {
    return '—';
  }
  return `${rows.toLocaleString('en-US')} ${rows === 1 ? 'row' : 'rows'}`;
}

/** How long ago an ISO time was, relative to `now`: `just now`, `5 min ago`, `3 h ago`, else the date. */
export function formatWhen(iso: string, now: Date = new Date()): string {
  const then = new Date(iso);
  const seconds = (now.getTime() - then.getTime()) / 1000;
  if (isNaN(seconds)) {
    return iso;
  }
  if (seconds < 45) {
    return 'just now';
  }
  if (seconds < 3600) {
    return `${Math.max(1, Math.round(seconds / 60))} min ago`;
  }
  if (seconds < 86400) {
    return `${Math.round(seconds / 3600)} h ago`;
  }
  return then.toISOString().slice(0, 16).replace('T', ' ');
}

/** The text a parameter's input starts with. */
export function parameterText(parameter: IParameter): string {
  const value = parameter.default;
  if (value === null || value === undefined) {
    return '';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

export type ParsedValue = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * The value to send for a parameter typed into the form. Numbers are checked
 * here so the user sees the mistake beside the field; text goes as typed and
 * the server types it the way `etl-nb run -p` does.
 */
export function parseParameter(parameter: IParameter, text: string | boolean): ParsedValue {
  if (parameter.type === 'bool' || typeof text === 'boolean') {
    return { ok: true, value: text === true || text === 'true' };
  }
  const trimmed = text.trim();
  if (parameter.type === 'int') {
    return /^[-+]?\d+$/.test(trimmed)
      ? { ok: true, value: parseInt(trimmed, 10) }
      : { ok: false, error: `${parameter.name} takes a whole number` };
  }
  if (parameter.type === 'float') {
    const value = Number(trimmed);
    return trimmed !== '' && isFinite(value)
      ? { ok: true, value }
      : { ok: false, error: `${parameter.name} takes a number` };
  }
  return { ok: true, value: text };
}

/** Check the server's version answer; a sentence for the user when it does not fit, else null. */
export function versionProblem(server: IVersion | null | undefined): string | null {
  if (!server || typeof server.api_version !== 'number') {
    return (
      'The etl_nb server extension answered something unexpected. Reinstall etl_nb in the ' +
      'environment JupyterLab runs from, then restart JupyterLab.'
    );
  }
  if (server.api_version !== API_VERSION) {
    return (
      `The etl_nb server extension (version ${server.version}) speaks API ${server.api_version}, ` +
      `this panel speaks API ${API_VERSION}. Install one version of etl_nb for both ` +
      '(pip install -U etl_nb), restart JupyterLab and reload this page.'
    );
  }
  return null;
}

/** Whether a notebook's cell sources declare `%etl` steps (the toolbar button shows only then). */
export function hasEtlCells(sources: string[]): boolean {
  return sources.some(source => /^\s*%%?etl\b/m.test(source));
}
