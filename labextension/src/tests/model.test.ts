/** The panel's logic, run with node's test runner (`npm test`). */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import {
  cronProblem,
  formatDuration,
  formatSlot,
  ISchedule,
  knownTimezones,
  formatRows,
  formatWhen,
  hasEtlCells,
  IStep,
  isActive,
  layoutDag,
  parameterText,
  parseParameter,
  statusClass,
  stepDescription,
  stepIdLabel,
  stepLabel,
  versionProblem
} from '../model';

const steps: IStep[] = [
  { id: 'orders', verb: 'extract', name: 'orders', source: 'lake', cell: 7 },
  { id: 'rates', verb: 'extract', name: 'rates', source: 'lake', cell: 8 },
  { id: 'revenue', verb: 'transform', name: 'revenue', python: false, cell: 11 },
  { id: 'check:revenue', verb: 'check', step: 'revenue', cell: 14 },
  {
    id: 'load:revenue:lake:out.parquet',
    verb: 'load',
    step: 'revenue',
    to: 'lake',
    target: 'out.parquet',
    mode: 'replace',
    cell: 15
  }
];
const edges: [string, string][] = [
  ['orders', 'revenue'],
  ['rates', 'revenue'],
  ['revenue', 'check:revenue'],
  ['revenue', 'load:revenue:lake:out.parquet'],
  ['check:revenue', 'load:revenue:lake:out.parquet']
];

describe('layoutDag', () => {
  it('puts each step one row below its deepest input', () => {
    const layout = layoutDag(steps, edges);
    const layer = Object.fromEntries(layout.nodes.map(n => [n.id, n.layer]));
    assert.deepEqual(layer, {
      orders: 0,
      rates: 0,
      revenue: 1,
      'check:revenue': 2,
      'load:revenue:lake:out.parquet': 3
    });
  });

  it('keeps the notebook order within a row and never overlaps boxes', () => {
    const layout = layoutDag(steps, edges);
    const [orders, rates] = layout.nodes;
    assert.ok(orders.x + orders.width <= rates.x);
    assert.equal(orders.y, rates.y);
    for (const node of layout.nodes) {
      assert.ok(node.x >= 0 && node.x + node.width <= layout.width);
      assert.ok(node.y >= 0 && node.y + node.height <= layout.height);
    }
  });

  it('draws one edge per known pair, from the bottom of the input to the top of the step', () => {
    const layout = layoutDag(steps, [...edges, ['ghost', 'revenue']]);
    assert.equal(layout.edges.length, edges.length);
    const revenue = layout.nodes.find(n => n.id === 'revenue')!;
    const first = layout.edges.find(e => e.from === 'orders')!;
    assert.ok(first.path.endsWith(`${revenue.x + revenue.width / 2},${revenue.y}`));
  });

  it('survives a cycle (the server reports it as a problem)', () => {
    const cyclic: IStep[] = [
      { id: 'a', verb: 'transform', name: 'a', cell: 1 },
      { id: 'b', verb: 'transform', name: 'b', cell: 2 }
    ];
    const layout = layoutDag(cyclic, [
      ['a', 'b'],
      ['b', 'a']
    ]);
    assert.equal(layout.nodes.length, 2);
  });

  it('is empty for a pipeline without steps', () => {
    assert.deepEqual(layoutDag([], []).nodes, []);
  });
});

describe('labels', () => {
  it('names extracts and transforms by their step, checks and loads by what they do', () => {
    assert.deepEqual(steps.map(stepLabel), [
      'orders',
      'rates',
      'revenue',
      'check revenue',
      'load revenue → lake'
    ]);
  });

  it('shortens the step ids runs record', () => {
    assert.deepEqual(
      ['load:revenue:lake:output/revenue.parquet', 'check:revenue', 'orders'].map(stepIdLabel),
      ['load revenue → lake', 'check revenue', 'orders']
    );
  });

  it('describes a step with its cell and last status for tooltips and screen readers', () => {
    const text = stepDescription(steps[4], { status: 'success', rows: 1234 });
    assert.equal(
      text,
      'load revenue into lake:out.parquet (replace) · cell 15 · last run: success, 1,234 rows'
    );
  });

  it('gives unknown statuses the neutral look', () => {
    assert.equal(statusClass('success'), 'etl-nb-status-success');
    assert.equal(statusClass('exploded'), 'etl-nb-status-none');
    assert.equal(statusClass(undefined), 'etl-nb-status-none');
  });

  it('treats queued and running runs as active', () => {
    assert.deepEqual(['queued', 'running', 'success', 'failed'].map(isActive), [true, true, false, false]);
  });
});

describe('formatting', () => {
  it('formats durations for people', () => {
    assert.deepEqual([0.035, 2.44, 12.4, 185, 3720, null].map(formatDuration), [
      '35 ms',
      '2.4 s',
      '12 s',
      '3 min 5 s',
      '1 h 2 min',
      '—'
    ]);
  });

  it('formats row counts with separators', () => {
    assert.deepEqual([0, 1, 1234567, null].map(formatRows), ['0 rows', '1 row', '1,234,567 rows', '—']);
  });

  it('says how long ago a run started', () => {
    const now = new Date('2026-12-01T10:00:00Z');
    assert.equal(formatWhen('2026-12-01T09:59:50+00:00', now), 'just now');
    assert.equal(formatWhen('2026-12-01T09:55:00+00:00', now), '5 min ago');
    assert.equal(formatWhen('2026-12-01T07:00:00+00:00', now), '3 h ago');
    assert.equal(formatWhen('2026-11-20T07:00:00+00:00', now), '2026-11-20 07:00');
  });
});

describe('parameters form', () => {
  it('starts each field with the parameters cell default', () => {
    assert.equal(parameterText({ name: 'start_date', default: '2026-01-01', type: 'str' }), '2026-01-01');
    assert.equal(parameterText({ name: 'limit', default: 10, type: 'int' }), '10');
    assert.equal(parameterText({ name: 'x', default: null, type: null }), '');
  });

  it('sends numbers as numbers and refuses text in a number field', () => {
    const limit = { name: 'limit', default: 10, type: 'int' as const };
    assert.deepEqual(parseParameter(limit, ' 25 '), { ok: true, value: 25 });
    assert.deepEqual(parseParameter(limit, '2.5'), { ok: false, error: 'limit takes a whole number' });
    const ratio = { name: 'ratio', default: 0.5, type: 'float' as const };
    assert.deepEqual(parseParameter(ratio, '0.25'), { ok: true, value: 0.25 });
    assert.equal(parseParameter(ratio, '').ok, false);
  });

  it('sends checkboxes as booleans and text as typed', () => {
    assert.deepEqual(parseParameter({ name: 'full', default: false, type: 'bool' }, true), {
      ok: true,
      value: true
    });
    assert.deepEqual(parseParameter({ name: 'day', default: 'x', type: 'str' }, ' 2026-02-01'), {
      ok: true,
      value: ' 2026-02-01'
    });
  });
});

describe('versionProblem', () => {
  it('accepts the API version this panel speaks', () => {
    assert.equal(versionProblem({ version: '0.1.0', api_version: 1 }), null);
  });

  it('explains a mismatched server and how to fix it', () => {
    const problem = versionProblem({ version: '0.9.0', api_version: 2 });
    assert.match(problem!, /speaks API 2, this panel speaks API 1/);
    assert.match(problem!, /pip install -U etl_nb/);
  });

  it('explains an answer that is not a version', () => {
    assert.match(versionProblem(null)!, /Reinstall etl_nb/);
  });
});

describe('hasEtlCells', () => {
  it('finds %%etl cells and %etl lines, not mentions in strings', () => {
    assert.equal(hasEtlCells(['import x', '%%etl extract a --from b\nSELECT 1']), true);
    assert.equal(hasEtlCells(['%load_ext etl_nb\n%etl connect lake ./data']), true);
    assert.equal(hasEtlCells(['print("use %%etl cells")', '# notes']), false);
  });
});

describe('schedules', () => {
  const schedule: ISchedule = {
    id: 'abc',
    notebook: 'quickstart.ipynb',
    notebook_path: 'quickstart.ipynb',
    pipeline: 'quickstart',
    cron: '0 6 * * *',
    timezone: 'Europe/Paris',
    params: {},
    paused: false,
    next_slot: '2026-12-02T06:00:00+01:00',
    last_run: null
  };

  it("shows the next slot in the schedule's own zone, or that it is paused", () => {
    assert.equal(formatSlot(schedule), 'next 2026-12-02 06:00 (Europe/Paris)');
    assert.equal(formatSlot({ ...schedule, paused: true, next_slot: null }), 'paused');
  });

  it('catches a cron expression with the wrong number of fields before sending it', () => {
    assert.equal(cronProblem('0 6 * * *'), null);
    assert.equal(cronProblem('@daily'), null);
    assert.match(cronProblem('0 6 *')!, /5 fields .* not 3/);
    assert.match(cronProblem('  ')!, /Give a cron expression/);
  });

  it('suggests IANA zones, UTC among them', () => {
    const zones = knownTimezones();
    assert.ok(zones.includes('UTC'));
    assert.ok(zones.includes('Europe/Paris'));
  });
});
