/**
 * The "ETL pipelines" sidebar: pipelines with their DAG, parameters and
 * problems, a Run button with a parameters form, recent runs, and schedules
 * (add with a cron expression and a zone, pause, resume, delete).
 *
 * Plain DOM in a Lumino widget (no UI framework in the bundle). Each
 * refresh redraws the sections from the API's answers; what the user is
 * doing (typed parameter values, open sections, focus) is kept across it.
 */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { ApiError, EtlNbClient } from './client';
import {
  cronProblem,
  defaultTimezone,
  formatDuration,
  formatSlot,
  formatRows,
  formatWhen,
  IPipeline,
  IRun,
  ISchedule,
  isActive,
  knownTimezones,
  layoutDag,
  parameterText,
  parseParameter,
  statusClass,
  stepDescription,
  stepIdLabel,
  stepLabel,
  versionProblem
} from './model';

const ACTIVE_POLL_MS = 1500;
const IDLE_POLL_MS = 20000;
const RECENT_RUNS = 15;
const NOTICE_MS = 6000;
const SVG = 'http://www.w3.org/2000/svg';

export interface IPanelOptions {
  client: EtlNbClient;
  /** Open a notebook (a path under the server's root) in JupyterLab. */
  openNotebook: (path: string) => void;
  /** The absolute URL of an API path (for links the browser follows itself). */
  apiUrl: (path: string) => string;
  /** Whether JupyterLab's current theme is a light one. */
  isLight: () => boolean;
}

type Child = Node | string | null | undefined | false;

/** `h('div', {class: 'x'}, child...)`: a small element builder. */
function h(
  tag: string,
  attrs: Record<string, string | number | boolean | null | undefined> = {},
  ...children: Child[]
): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === true) {
      element.setAttribute(name, '');
    } else if (value !== false && value !== null && value !== undefined) {
      element.setAttribute(name, String(value));
    }
  }
  return append(element, ...children);
}

/** Append the children that are there (null, undefined and false are skipped). */
function append<T extends Element>(parent: T, ...children: Child[]): T {
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      parent.append(child);
    }
  }
  return parent;
}

function svg(tag: string, attrs: Record<string, string | number> = {}): SVGElement {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    element.setAttribute(name, String(value));
  }
  return element;
}

export class EtlPipelinesPanel extends Widget {
  private readonly options: IPanelOptions;
  private readonly messageNode: HTMLElement;
  private readonly pipelinesNode: HTMLElement;
  private readonly runsNode: HTMLElement;
  private readonly schedulesNode: HTMLElement;
  private pipelines: IPipeline[] = [];
  private schedules: ISchedule[] = [];
  private readonly draft = { notebook: '', cron: '', timezone: defaultTimezone() };
  private confirmingDelete: string | null = null;
  private runs: IRun[] = [];
  private verified = false;
  private loaded = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private refreshing: Promise<void> | null = null;
  private readonly values = new Map<string, string | boolean>();
  private readonly closed = new Set<string>();
  private readonly expandedRuns = new Set<string>();
  private readonly runDetails = new Map<string, IRun>();
  private notice: { text: string; kind: 'info' | 'error'; fromLoad?: boolean } | null = null;

  constructor(options: IPanelOptions) {
    super();
    this.options = options;
    this.addClass('etl-nb-panel');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'ETL pipelines');
    const refresh = h(
      'button',
      { class: 'etl-nb-button etl-nb-refresh', type: 'button', title: 'Refresh pipelines and runs' },
      'Refresh'
    );
    refresh.addEventListener('click', () => void this.refresh());
    this.messageNode = h('div', { class: 'etl-nb-message', role: 'status', 'aria-live': 'polite' });
    this.pipelinesNode = h('section', { class: 'etl-nb-pipelines', 'aria-label': 'Pipelines' });
    this.runsNode = h('section', { class: 'etl-nb-runs', 'aria-label': 'Recent runs' });
    this.schedulesNode = h('section', { class: 'etl-nb-schedules', 'aria-label': 'Schedules' });
    this.node.append(
      h('header', { class: 'etl-nb-header' }, h('h2', {}, 'ETL pipelines'), refresh),
      this.messageNode,
      this.pipelinesNode,
      this.runsNode,
      this.schedulesNode
    );
    this.renderLoading();
  }

  /** Reload everything from the API (one refresh at a time). */
  refresh(): Promise<void> {
    if (!this.refreshing) {
      this.refreshing = this.load().finally(() => {
        this.refreshing = null;
        this.scheduleNext();
      });
    }
    return this.refreshing;
  }

  /** Start a recorded run of `notebook` and show it (used by the Run buttons and commands). */
  async startRun(notebook: string, params: Record<string, unknown> = {}): Promise<string | null> {
    try {
      const started = await this.options.client.startRun(notebook, params);
      const notice = { text: `Run ${started.id} of ${started.pipeline} started.`, kind: 'info' as const };
      this.notice = notice;
      this.renderMessage();
      setTimeout(() => {
        if (this.notice === notice) {
          this.notice = null; // the run is in the list by now
          this.renderMessage();
        }
      }, NOTICE_MS);
      await this.refresh();
      return started.id;
    } catch (error) {
      this.notice = { text: this.describe(error), kind: 'error' };
      this.renderMessage();
      return null;
    }
  }

  dispose(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    super.dispose();
  }

  protected onAfterShow(_msg: Message): void {
    void this.refresh();
  }

  protected onAfterAttach(_msg: Message): void {
    void this.refresh();
  }

  private async load(): Promise<void> {
    const { client } = this.options;
    try {
      if (!this.verified) {
        const problem = versionProblem(await client.version());
        if (problem) {
          this.fail(problem);
          return;
        }
        this.verified = true;
      }
      const [pipelines, runs, schedules] = await Promise.all([
        client.pipelines(),
        client.runs({ limit: RECENT_RUNS }),
        client.schedules()
      ]);
      this.pipelines = pipelines;
      this.runs = runs;
      this.schedules = schedules;
      await this.loadExpandedRuns();
      this.loaded = true;
      if (this.notice?.fromLoad) {
        this.notice = null; // the API answers again
      }
      this.render();
    } catch (error) {
      this.fail(this.describe(error));
    }
  }

  private async loadExpandedRuns(): Promise<void> {
    const wanted = [...this.expandedRuns].filter(id => {
      const cached = this.runDetails.get(id);
      const listed = this.runs.find(r => r.id === id);
      return !cached || isActive(cached.status) || (listed && listed.status !== cached.status);
    });
    const details = await Promise.all(wanted.map(id => this.options.client.run(id)));
    details.forEach(run => this.runDetails.set(run.id, run));
  }

  private fail(text: string): void {
    this.notice = { text, kind: 'error', fromLoad: true };
    if (!this.loaded) {
      this.pipelinesNode.replaceChildren();
      this.runsNode.replaceChildren();
      this.schedulesNode.replaceChildren();
    }
    this.renderMessage();
  }

  private describe(error: unknown): string {
    if (error instanceof ApiError) {
      if (error.missingExtension) {
        this.verified = false;
      }
      return error.message;
    }
    return `The panel failed: ${error instanceof Error ? error.message : String(error)}`;
  }

  private scheduleNext(): void {
    if (this.isDisposed) {
      return;
    }
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    const active = this.runs.some(r => isActive(r.status));
    if (!active && !this.isVisible) {
      this.timer = null; // hidden and nothing running: refresh again when shown
      return;
    }
    this.timer = setTimeout(() => void this.refresh(), active ? ACTIVE_POLL_MS : IDLE_POLL_MS);
  }

  // --- rendering ---------------------------------------------------------------------

  private render(): void {
    const focused = this.focusKey();
    this.renderMessage();
    this.renderPipelines();
    this.renderRuns();
    this.renderSchedules();
    this.restoreFocus(focused);
  }

  private renderLoading(): void {
    this.pipelinesNode.replaceChildren(h('p', { class: 'etl-nb-empty' }, 'Looking for pipelines…'));
  }

  private renderMessage(): void {
    const notice = this.notice;
    this.messageNode.replaceChildren();
    if (!notice) {
      return;
    }
    const dismiss = h(
      'button',
      { class: 'etl-nb-link', type: 'button', 'aria-label': 'Dismiss message' },
      'Dismiss'
    );
    dismiss.addEventListener('click', () => {
      this.notice = null;
      this.renderMessage();
    });
    const retry = h('button', { class: 'etl-nb-link', type: 'button' }, 'Retry');
    retry.addEventListener('click', () => void this.refresh());
    this.messageNode.className = `etl-nb-message etl-nb-message-${notice.kind}`;
    this.messageNode.setAttribute('role', notice.kind === 'error' ? 'alert' : 'status');
    append(this.messageNode, h('span', {}, notice.text), notice.kind === 'error' ? retry : null, dismiss);
  }

  private renderPipelines(): void {
    const title = h('h3', {}, `Pipelines (${this.pipelines.length})`);
    if (!this.pipelines.length) {
      this.pipelinesNode.replaceChildren(
        title,
        h(
          'p',
          { class: 'etl-nb-empty' },
          'No notebook with %%etl cells under this folder yet. Add a cell like `%%etl extract orders --from lake` to a notebook.'
        )
      );
      return;
    }
    this.pipelinesNode.replaceChildren(title, ...this.pipelines.map(p => this.renderPipeline(p)));
  }

  private renderPipeline(pipeline: IPipeline): HTMLElement {
    const details = h('details', {
      class: 'etl-nb-pipeline',
      'data-path': pipeline.path,
      open: !this.closed.has(pipeline.path)
    });
    details.addEventListener('toggle', () => {
      if ((details as HTMLDetailsElement).open) {
        this.closed.delete(pipeline.path);
      } else {
        this.closed.add(pipeline.path);
      }
    });
    const last = pipeline.last_run;
    const summary = h(
      'summary',
      { 'data-focus': `summary:${pipeline.path}` },
      h('span', { class: 'etl-nb-pipeline-name' }, pipeline.name),
      last
        ? h('span', { class: `etl-nb-badge ${statusClass(last.status)}` }, last.status)
        : h('span', { class: 'etl-nb-badge etl-nb-status-none' }, 'never run'),
      pipeline.problems.length
        ? h(
            'span',
            { class: 'etl-nb-badge etl-nb-status-failed', title: 'problems in the notebook' },
            `${pipeline.problems.length} problem${pipeline.problems.length === 1 ? '' : 's'}`
          )
        : null
    );
    const open = h(
      'button',
      {
        class: 'etl-nb-link etl-nb-path',
        type: 'button',
        title: 'Open the notebook',
        'data-focus': `open:${pipeline.path}`
      },
      pipeline.path
    );
    open.addEventListener('click', () => this.options.openNotebook(pipeline.path));
    append(
      details,
      summary,
      open,
      this.renderDag(pipeline),
      this.renderProblems(pipeline),
      this.renderForm(pipeline)
    );
    return details;
  }

  private renderDag(pipeline: IPipeline): Element {
    if (!pipeline.steps.length) {
      return h('p', { class: 'etl-nb-empty' }, 'No steps yet.');
    }
    const layout = layoutDag(pipeline.steps, pipeline.edges);
    const root = svg('svg', {
      class: 'etl-nb-dag',
      viewBox: `0 0 ${layout.width} ${layout.height}`,
      width: layout.width,
      role: 'group',
      'aria-label': `DAG of ${pipeline.name}: ${pipeline.steps.length} steps`
    });
    const defs = svg('defs');
    const marker = svg('marker', {
      id: `etl-nb-arrow-${pipeline.name}`,
      viewBox: '0 0 8 8',
      refX: 7,
      refY: 4,
      markerWidth: 6,
      markerHeight: 6,
      orient: 'auto'
    });
    marker.append(svg('path', { d: 'M0,0 L8,4 L0,8 z', class: 'etl-nb-dag-arrow' }));
    defs.append(marker);
    root.append(defs);
    for (const edge of layout.edges) {
      root.append(
        svg('path', {
          d: edge.path,
          class: 'etl-nb-dag-edge',
          'marker-end': `url(#etl-nb-arrow-${pipeline.name})`
        })
      );
    }
    const byId = new Map(pipeline.steps.map(s => [s.id, s]));
    for (const box of layout.nodes) {
      const step = byId.get(box.id)!;
      const status = pipeline.last_run?.steps[box.id];
      const description = stepDescription(step, status);
      const node = svg('g', {
        class: `etl-nb-dag-node etl-nb-verb-${step.verb} ${statusClass(status?.status)}`,
        transform: `translate(${box.x},${box.y})`,
        tabindex: 0,
        role: 'img',
        'aria-label': description,
        'data-step': box.id,
        'data-focus': `step:${pipeline.path}:${box.id}`
      });
      const title = svg('title');
      title.textContent = description;
      const label = svg('text', { x: box.width / 2, y: box.height / 2 + 4, 'text-anchor': 'middle' });
      const text = stepLabel(step);
      label.textContent = text.length > 15 ? `${text.slice(0, 14)}…` : text;
      node.append(title, svg('rect', { width: box.width, height: box.height, rx: 5 }), label);
      root.append(node);
    }
    return h('div', { class: 'etl-nb-dag-wrap' }, root as unknown as Node);
  }

  private renderProblems(pipeline: IPipeline): HTMLElement | null {
    if (!pipeline.problems.length) {
      return null;
    }
    return h(
      'ul',
      { class: 'etl-nb-problems', 'aria-label': 'Problems' },
      ...pipeline.problems.map(p =>
        h('li', {}, p.cell !== null ? h('strong', {}, `cell ${p.cell}: `) : null, p.message)
      )
    );
  }

  private renderForm(pipeline: IPipeline): HTMLElement {
    const form = h('form', { class: 'etl-nb-form', 'aria-label': `Run ${pipeline.name}` });
    const errors = h('div', { class: 'etl-nb-form-error', role: 'alert' });
    const fields = pipeline.parameters.map(parameter => {
      const key = `${pipeline.path}\u0000${parameter.name}`;
      const id = `etl-nb-param-${pipeline.name}-${parameter.name}`;
      const stored = this.values.get(key);
      let input: HTMLInputElement;
      if (parameter.type === 'bool') {
        input = h('input', {
          type: 'checkbox',
          id,
          name: parameter.name,
          'data-focus': `param:${key}`
        }) as HTMLInputElement;
        input.checked = stored !== undefined ? stored === true : parameter.default === true;
        input.addEventListener('change', () => this.values.set(key, input.checked));
      } else {
        const numeric = parameter.type === 'int' || parameter.type === 'float';
        input = h('input', {
          type: 'text',
          id,
          name: parameter.name,
          inputmode: numeric ? 'decimal' : null,
          spellcheck: 'false',
          'data-focus': `param:${key}`
        }) as HTMLInputElement;
        input.value = typeof stored === 'string' ? stored : parameterText(parameter);
        input.addEventListener('input', () => this.values.set(key, input.value));
      }
      return h(
        'div',
        { class: 'etl-nb-field' },
        h(
          'label',
          { for: id },
          parameter.name,
          parameter.type && parameter.type !== 'str'
            ? h('span', { class: 'etl-nb-type' }, ` ${parameter.type}`)
            : null
        ),
        input
      );
    });
    const run = h(
      'button',
      { class: 'etl-nb-button etl-nb-run-button', type: 'submit', 'data-focus': `run:${pipeline.path}` },
      'Run'
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      const params: Record<string, unknown> = {};
      const problems: string[] = [];
      for (const parameter of pipeline.parameters) {
        const key = `${pipeline.path}\u0000${parameter.name}`;
        const input = form.querySelector<HTMLInputElement>(`[name="${CSS.escape(parameter.name)}"]`);
        const raw = input
          ? input.type === 'checkbox'
            ? input.checked
            : input.value
          : (this.values.get(key) ?? parameterText(parameter));
        const parsed = parseParameter(parameter, raw);
        if (parsed.ok) {
          params[parameter.name] = parsed.value;
        } else {
          problems.push(parsed.error);
        }
      }
      errors.textContent = problems.join('; ');
      if (!problems.length) {
        run.setAttribute('disabled', '');
        void this.startRun(pipeline.path, params).finally(() => run.removeAttribute('disabled'));
      }
    });
    form.append(
      pipeline.parameters.length
        ? h('div', { class: 'etl-nb-fields' }, ...fields)
        : h('p', { class: 'etl-nb-hint' }, 'No parameters cell.'),
      errors,
      h('div', { class: 'etl-nb-actions' }, run)
    );
    return form;
  }

  private renderRuns(): void {
    const title = h('h3', {}, 'Recent runs');
    if (!this.runs.length) {
      this.runsNode.replaceChildren(
        title,
        h('p', { class: 'etl-nb-empty' }, 'No runs recorded yet: press Run on a pipeline.')
      );
      return;
    }
    const list = h('ul', { class: 'etl-nb-run-list' }, ...this.runs.map(run => this.renderRun(run)));
    this.runsNode.replaceChildren(title, list);
  }

  private renderRun(run: IRun): HTMLElement {
    const expanded = this.expandedRuns.has(run.id);
    const toggle = h(
      'button',
      {
        class: 'etl-nb-run-toggle',
        type: 'button',
        'aria-expanded': String(expanded),
        'data-focus': `run-toggle:${run.id}`,
        title: `Run ${run.id}`
      },
      h('span', { class: `etl-nb-badge ${statusClass(run.status)}` }, run.status),
      h('span', { class: 'etl-nb-run-pipeline' }, run.pipeline),
      h('span', { class: 'etl-nb-run-when' }, formatWhen(run.started_at))
    );
    toggle.addEventListener('click', () => {
      if (this.expandedRuns.has(run.id)) {
        this.expandedRuns.delete(run.id);
      } else {
        this.expandedRuns.add(run.id);
      }
      void this.refresh();
    });
    const facts = h(
      'div',
      { class: 'etl-nb-run-facts' },
      h('span', { class: 'etl-nb-run-duration', title: 'duration' }, formatDuration(run.seconds)),
      h('span', { class: 'etl-nb-run-rows', title: 'rows loaded' }, formatRows(run.rows)),
      run.has_output ? this.notebookLink(run) : null
    );
    const item = h(
      'li',
      { class: `etl-nb-run ${statusClass(run.status)}`, 'data-run': run.id },
      toggle,
      facts
    );
    if (run.error) {
      item.append(h('pre', { class: 'etl-nb-run-error' }, run.error));
    }
    const detail = this.runDetails.get(run.id);
    if (expanded && detail) {
      item.append(
        h(
          'table',
          { class: 'etl-nb-steps' },
          h(
            'thead',
            {},
            h('tr', {}, h('th', {}, 'step'), h('th', {}, 'status'), h('th', {}, 'rows'), h('th', {}, 'time'))
          ),
          h(
            'tbody',
            {},
            ...detail.steps.map(s =>
              h(
                'tr',
                {},
                h('td', { class: 'etl-nb-step-name', title: s.step }, stepIdLabel(s.step)),
                h('td', { class: statusClass(s.status) }, s.status),
                h('td', { class: 'etl-nb-num' }, s.rows === null ? '—' : s.rows.toLocaleString('en-US')),
                h('td', { class: 'etl-nb-num' }, formatDuration(s.seconds))
              )
            )
          )
        )
      );
    }
    return item;
  }

  private renderSchedules(): void {
    const title = h('h3', {}, `Schedules (${this.schedules.length})`);
    const list = this.schedules.length
      ? h('ul', { class: 'etl-nb-schedule-list' }, ...this.schedules.map(s => this.renderSchedule(s)))
      : h('p', { class: 'etl-nb-empty' }, 'No schedules: add one below, or with `etl-nb schedule add`.');
    this.schedulesNode.replaceChildren(title, list, this.renderScheduleForm());
  }

  private renderSchedule(schedule: ISchedule): HTMLElement {
    const toggle = h(
      'button',
      { class: 'etl-nb-button', type: 'button', 'data-focus': `pause:${schedule.id}` },
      schedule.paused ? 'Resume' : 'Pause'
    );
    toggle.addEventListener(
      'click',
      () => void this.act(() => this.options.client.setPaused(schedule.id, !schedule.paused))
    );
    const confirming = this.confirmingDelete === schedule.id;
    const remove = h(
      'button',
      {
        class: `etl-nb-button${confirming ? ' etl-nb-danger' : ''}`,
        type: 'button',
        'data-focus': `delete:${schedule.id}`
      },
      confirming ? 'Confirm delete' : 'Delete'
    );
    remove.addEventListener('click', () => {
      if (this.confirmingDelete !== schedule.id) {
        this.confirmingDelete = schedule.id; // a second press deletes: no schedule is lost to one slip
        this.render();
        return;
      }
      this.confirmingDelete = null;
      void this.act(() => this.options.client.removeSchedule(schedule.id));
    });
    const last = schedule.last_run?.status;
    return h(
      'li',
      { class: `etl-nb-schedule${schedule.paused ? ' etl-nb-paused' : ''}`, 'data-schedule': schedule.id },
      h(
        'div',
        { class: 'etl-nb-schedule-head' },
        h('span', { class: 'etl-nb-run-pipeline' }, schedule.pipeline),
        h('code', { class: 'etl-nb-cron' }, schedule.cron),
        last ? h('span', { class: `etl-nb-badge ${statusClass(last)}`, title: 'last run' }, last) : null
      ),
      h('div', { class: 'etl-nb-run-facts' }, h('span', {}, formatSlot(schedule))),
      h('div', { class: 'etl-nb-schedule-actions' }, toggle, remove)
    );
  }

  private renderScheduleForm(): HTMLElement {
    const form = h('form', { class: 'etl-nb-schedule-form', 'aria-label': 'Add a schedule' });
    const error = h('div', { class: 'etl-nb-form-error', role: 'alert' });
    if (!this.pipelines.some(p => p.path === this.draft.notebook)) {
      this.draft.notebook = this.pipelines[0]?.path ?? '';
    }
    const notebook = h(
      'select',
      { id: 'etl-nb-schedule-notebook', name: 'notebook', 'data-focus': 'schedule:notebook' },
      ...this.pipelines.map(p =>
        h('option', { value: p.path, selected: p.path === this.draft.notebook }, p.path)
      )
    ) as HTMLSelectElement;
    notebook.addEventListener('change', () => (this.draft.notebook = notebook.value));
    const cron = h('input', {
      id: 'etl-nb-schedule-cron',
      name: 'cron',
      type: 'text',
      placeholder: '0 6 * * *',
      spellcheck: 'false',
      'data-focus': 'schedule:cron'
    }) as HTMLInputElement;
    cron.value = this.draft.cron;
    cron.addEventListener('input', () => (this.draft.cron = cron.value));
    const zones = h(
      'datalist',
      { id: 'etl-nb-zones' },
      ...knownTimezones().map(z => h('option', { value: z }))
    );
    const tz = h('input', {
      id: 'etl-nb-schedule-tz',
      name: 'tz',
      type: 'text',
      list: 'etl-nb-zones',
      spellcheck: 'false',
      'data-focus': 'schedule:tz'
    }) as HTMLInputElement;
    tz.value = this.draft.timezone;
    tz.addEventListener('input', () => (this.draft.timezone = tz.value));
    const add = h(
      'button',
      { class: 'etl-nb-button', type: 'submit', 'data-focus': 'schedule:add' },
      'Add schedule'
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      const problem = !notebook.value ? 'No pipeline to schedule yet.' : cronProblem(cron.value);
      error.textContent = problem ?? '';
      if (problem) {
        return;
      }
      add.setAttribute('disabled', '');
      void this.act(async () => {
        const added = await this.options.client.addSchedule({
          notebook: notebook.value,
          cron: cron.value.trim(),
          timezone: tz.value.trim() || 'UTC'
        });
        this.draft.cron = '';
        return added;
      }, error).finally(() => add.removeAttribute('disabled'));
    });
    return append(
      form,
      h(
        'div',
        { class: 'etl-nb-fields' },
        h('div', { class: 'etl-nb-field' }, h('label', { for: notebook.id }, 'notebook'), notebook),
        h('div', { class: 'etl-nb-field' }, h('label', { for: cron.id }, 'cron'), cron),
        h('div', { class: 'etl-nb-field' }, h('label', { for: tz.id }, 'zone'), tz)
      ),
      zones,
      error,
      h('div', { class: 'etl-nb-actions' }, add)
    );
  }

  /** Do a schedule change, then refresh; a refusal shows in `where` (or the panel's message). */
  private async act(change: () => Promise<unknown>, where?: HTMLElement): Promise<void> {
    try {
      await change();
      await this.refresh();
    } catch (error) {
      const text = this.describe(error);
      if (where) {
        where.textContent = text;
      } else {
        this.notice = { text, kind: 'error' };
        this.renderMessage();
      }
    }
  }

  private notebookLink(run: IRun): HTMLElement {
    const theme = this.options.isLight() ? 'light' : 'dark';
    return h(
      'a',
      {
        class: 'etl-nb-link',
        href: this.options.apiUrl(EtlNbClient.notebookPath(run.id, theme)),
        target: '_blank',
        rel: 'noopener',
        title: 'Open the executed notebook in a new tab',
        'data-focus': `notebook:${run.id}`
      },
      'executed notebook'
    );
  }

  // --- focus across redraws ----------------------------------------------------------

  private focusKey(): { key: string; start: number | null; end: number | null } | null {
    const active = document.activeElement;
    const key = active && this.node.contains(active) ? active.getAttribute('data-focus') : null;
    if (!key) {
      return null;
    }
    const field = active instanceof HTMLInputElement && active.type === 'text' ? active : null;
    return { key, start: field?.selectionStart ?? null, end: field?.selectionEnd ?? null };
  }

  private restoreFocus(focused: { key: string; start: number | null; end: number | null } | null): void {
    if (!focused) {
      return;
    }
    const again = this.node.querySelector<HTMLElement | SVGElement>(
      `[data-focus="${CSS.escape(focused.key)}"]`
    );
    again?.focus();
    if (again instanceof HTMLInputElement && focused.start !== null) {
      again.setSelectionRange(focused.start, focused.end ?? focused.start); // typing goes on where it was
    }
  }
}
