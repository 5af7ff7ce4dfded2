/** The API client against a fake server (`npm test`). */
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { ApiError, EtlNbClient, MISSING_EXTENSION, Requester } from '../client';

interface ISent {
  path: string;
  init: RequestInit;
}

function fakeServer(answer: (sent: ISent) => Response | Promise<Response>): {
  client: EtlNbClient;
  sent: ISent[];
} {
  const sent: ISent[] = [];
  const request: Requester = async (path, init) => {
    sent.push({ path, init });
    return answer({ path, init });
  };
  return { client: new EtlNbClient(request), sent };
}

const json = (body: unknown, status = 200) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof ApiError);
    return error;
  }
  throw new Error('expected the call to fail');
}

describe('EtlNbClient', () => {
  it('posts a run as JSON and returns the id the server answered', async () => {
    const { client, sent } = fakeServer(() =>
      json({ id: 'r1', status: 'queued', pipeline: 'quickstart' }, 202)
    );
    const started = await client.startRun('notebooks/quickstart.ipynb', { start_date: '2026-01-01' });
    assert.equal(started.id, 'r1');
    assert.equal(sent[0].path, 'runs');
    assert.equal(sent[0].init.method, 'POST');
    assert.deepEqual(JSON.parse(String(sent[0].init.body)), {
      notebook: 'notebooks/quickstart.ipynb',
      params: { start_date: '2026-01-01' }
    });
  });

  it("asks for one pipeline's runs with a query string and unwraps the list", async () => {
    const { client, sent } = fakeServer(() => json({ runs: [{ id: 'r1' }] }));
    const runs = await client.runs({ pipeline: 'a b.ipynb', limit: 5 });
    assert.equal(runs.length, 1);
    assert.equal(sent[0].path, 'runs?pipeline=a+b.ipynb&limit=5');
  });

  it('escapes run ids in paths', async () => {
    const { client, sent } = fakeServer(() => json({ id: 'x/y' }));
    await client.run('x/y');
    assert.equal(sent[0].path, 'runs/x%2Fy');
    assert.equal(EtlNbClient.notebookPath('r1', 'dark'), 'runs/r1/notebook?theme=dark');
  });

  it("passes on the server's sentence for a refused request", async () => {
    const { client } = fakeServer(() =>
      json({ message: "'../x.ipynb' is outside the server's root folder", reason: 'Forbidden' }, 403)
    );
    const error = await rejection(client.startRun('../x.ipynb'));
    assert.equal(error.status, 403);
    assert.match(error.message, /outside the server's root/);
  });

  it('says the server extension is missing when Jupyter has no such route', async () => {
    const { client } = fakeServer(() => new Response('<html>404 Not Found</html>', { status: 404 }));
    const error = await rejection(client.version());
    assert.equal(error.missingExtension, true);
    assert.equal(error.message, MISSING_EXTENSION);
  });

  it('tells a user whose session expired to log in again', async () => {
    const { client } = fakeServer(() => json({ message: 'Forbidden', reason: null }, 403));
    assert.match((await rejection(client.pipelines())).message, /log in again/);
  });

  it('reports an unreachable server', async () => {
    const { client } = fakeServer(() => Promise.reject(new TypeError('Failed to fetch')));
    const error = await rejection(client.pipelines());
    assert.equal(error.status, null);
    assert.match(error.message, /Cannot reach the Jupyter server \(Failed to fetch\)/);
  });

  it('reports a 500 without a message by its status', async () => {
    const { client } = fakeServer(() => new Response('', { status: 502, statusText: 'Bad Gateway' }));
    assert.match((await rejection(client.runs())).message, /502 Bad Gateway/);
  });

  it('adds, pauses and removes schedules with the right verbs and paths', async () => {
    const { client, sent } = fakeServer(({ init }) => json({ id: 's1', paused: init.method === 'PATCH' }));
    await client.addSchedule({ notebook: 'q.ipynb', cron: '0 6 * * *', timezone: 'Europe/Paris' });
    await client.setPaused('s1', true);
    await client.removeSchedule('s1');
    assert.deepEqual(
      sent.map(s => [s.init.method, s.path, s.init.body ?? null]),
      [
        [
          'POST',
          'schedules',
          JSON.stringify({ notebook: 'q.ipynb', cron: '0 6 * * *', timezone: 'Europe/Paris' })
        ],
        ['PATCH', 'schedules/s1', JSON.stringify({ paused: true })],
        ['DELETE', 'schedules/s1', null]
      ]
    );
  });
});
