import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { UsageWriter } from '../src/usage/usage-writer';
import type { NewUsageRecord } from '../src/usage/usage.repository';
import { ErrorEnvelope, TEST_DATABASE_URL, TestGateway, startTestGateway } from './support/test-gateway';

interface Totals {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  credits: number;
}

interface UsageBody {
  object: string;
  from: string;
  to: string;
  totals: Totals;
  groups: (Totals & { group: string | null })[];
}

function totals(requests: number, prompt: number, completion: number, credits: number): Totals {
  return { requests, prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, credits };
}

describe('usage', () => {
  let gw: TestGateway;
  let writer: UsageWriter;
  let closed = false;
  const tag = randomBytes(4).toString('hex');
  const [keyA, keyB] = [randomUUID(), randomUUID()];
  const [modelA, modelB] = [`usage-a-${tag}`, `usage-b-${tag}`];
  // A past window no other spec writes into: the sums below are exact.
  const window = 'from=2003-03-01T00:00:00Z&to=2003-03-04T00:00:00Z';

  function usage(fields: Partial<NewUsageRecord>): NewUsageRecord {
    const prompt = fields.prompt_tokens ?? 0;
    const completion = fields.completion_tokens ?? 0;
    return {
      request_id: `req-${randomUUID()}`,
      api_key_id: keyA,
      model: modelA,
      account_id: 'acct-a',
      status: 'success',
      http_status: 200,
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      credits: 0,
      usage_estimated: false,
      stream: false,
      latency_ms: 20,
      ttft_ms: null,
      error_code: null,
      ...fields,
    };
  }

  async function usageOf(query: string): Promise<UsageBody> {
    const res = await gw.admin(`/admin/usage?${query}`);
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as UsageBody;
  }

  before(async () => {
    gw = await startTestGateway();
    writer = gw.app.get(UsageWriter);
    const day = (iso: string) => new Date(iso);
    for (const record of [
      usage({ api_key_id: keyA, model: modelA, account_id: 'acct-a', created_at: day('2003-03-01T10:00:00Z'), prompt_tokens: 100, completion_tokens: 10, credits: 1.5 }),
      usage({ api_key_id: keyA, model: modelB, account_id: 'acct-b', created_at: day('2003-03-01T23:59:59Z'), prompt_tokens: 200, completion_tokens: 20, credits: 2.25 }),
      usage({ api_key_id: keyB, model: modelA, account_id: null, created_at: day('2003-03-02T00:00:00Z'), prompt_tokens: 300, completion_tokens: 30, credits: 0.000001, status: 'error', http_status: 502 }),
      usage({ api_key_id: keyB, model: modelB, account_id: 'acct-a', created_at: day('2003-03-03T12:00:00Z'), prompt_tokens: 400, completion_tokens: 40, credits: 4, status: 'cancelled', http_status: 499 }),
      // Outside the window on either side.
      usage({ created_at: day('2003-02-28T23:59:59.999Z'), prompt_tokens: 7, credits: 7 }),
      usage({ created_at: day('2003-03-04T00:00:00Z'), prompt_tokens: 7, credits: 7 }),
    ]) {
      writer.record(record);
    }
    await writer.flush();
  });

  after(async () => {
    if (!closed) await gw.close();
  });

  it('sums every request in the window as JSON numbers, with no groups unless asked', async () => {
    const body = await usageOf(window);
    assert.equal(body.object, 'usage');
    assert.equal(body.from, '2003-03-01T00:00:00.000Z');
    assert.equal(body.to, '2003-03-04T00:00:00.000Z');
    assert.deepEqual(body.totals, totals(4, 1000, 100, 7.750001));
    assert.deepEqual(body.groups, []);
  });

  it('groups by key, model, account and UTC day', async () => {
    const byKey = await usageOf(`${window}&group_by=key`);
    assert.deepEqual(byKey.totals, totals(4, 1000, 100, 7.750001));
    assert.deepEqual(
      new Map(byKey.groups.map(({ group, ...sums }) => [group, sums])),
      new Map([
        [keyA, totals(2, 300, 30, 3.75)],
        [keyB, totals(2, 700, 70, 4.000001)],
      ]),
    );

    const byModel = await usageOf(`${window}&group_by=model`);
    assert.deepEqual(byModel.groups, [
      { group: modelA, ...totals(2, 400, 40, 1.500001) },
      { group: modelB, ...totals(2, 600, 60, 6.25) },
    ]);

    const byAccount = await usageOf(`${window}&group_by=account`);
    assert.deepEqual(byAccount.groups, [
      { group: 'acct-a', ...totals(2, 500, 50, 5.5) },
      { group: 'acct-b', ...totals(1, 200, 20, 2.25) },
      { group: null, ...totals(1, 300, 30, 0.000001) },
    ]);

    const byDay = await usageOf(`${window}&group_by=day`);
    assert.deepEqual(byDay.groups, [
      { group: '2003-03-01', ...totals(2, 300, 30, 3.75) },
      { group: '2003-03-02', ...totals(1, 300, 30, 0.000001) },
      { group: '2003-03-03', ...totals(1, 400, 40, 4) },
    ]);
  });

  it('filters by key, model and time, from inclusive and to exclusive', async () => {
    assert.deepEqual((await usageOf(`${window}&key_id=${keyA}`)).totals, totals(2, 300, 30, 3.75));
    assert.deepEqual((await usageOf(`${window}&model=${modelB}`)).totals, totals(2, 600, 60, 6.25));
    assert.deepEqual((await usageOf(`${window}&key_id=${keyB}&model=${modelB}&group_by=day`)).groups, [
      { group: '2003-03-03', ...totals(1, 400, 40, 4) },
    ]);
    assert.deepEqual((await usageOf('from=2003-03-01T23:00:00Z&to=2003-03-02T00:00:00Z')).totals, totals(1, 200, 20, 2.25));
    assert.deepEqual((await usageOf('from=2003-03-02T00:00:00Z&to=2003-03-02T00:00:01Z')).totals, totals(1, 300, 30, 0.000001));
    // A time without a zone is UTC; a date alone is midnight UTC.
    assert.deepEqual((await usageOf('from=2003-03-03T11:00:00&to=2003-03-04')).totals, totals(1, 400, 40, 4));

    const empty = await usageOf(`from=2003-03-05T00:00:00Z&to=2003-03-06T00:00:00Z&model=${modelA}&group_by=day`);
    assert.deepEqual(empty.totals, totals(0, 0, 0, 0));
    assert.deepEqual(empty.groups, []);
  });

  it('defaults to the last 30 days', async () => {
    const model = `usage-recent-${tag}`;
    writer.record(usage({ model, created_at: new Date(Date.now() - 24 * 3600_000), prompt_tokens: 5, credits: 1 }));
    writer.record(usage({ model, created_at: new Date(Date.now() - 31 * 24 * 3600_000), prompt_tokens: 50, credits: 10 }));
    await writer.flush();
    const body = await usageOf(`model=${model}`);
    assert.deepEqual(body.totals, totals(1, 5, 0, 1));
    assert.equal(Date.parse(body.to) - Date.parse(body.from), 30 * 24 * 3600_000);
    assert.ok(Math.abs(Date.parse(body.to) - Date.now()) < 60_000);
  });

  it('shows a recorded request within 5 seconds without being flushed', async () => {
    const model = `usage-live-${tag}`;
    writer.record(usage({ model, prompt_tokens: 3, completion_tokens: 4, credits: 0.5 }));
    const deadline = Date.now() + 5_000;
    let body: UsageBody;
    do {
      body = await usageOf(`model=${model}`);
      if (body.totals.requests > 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    } while (Date.now() < deadline);
    assert.deepEqual(body.totals, totals(1, 3, 4, 0.5));
  });

  it('adds the credits to the key’s credits_used, once per request', async () => {
    const { id } = await gw.createKey({ name: 'usage credits' });
    const first = usage({ api_key_id: id, credits: 1.5 });
    writer.record(first);
    writer.record(usage({ api_key_id: id, credits: 2 }));
    await writer.flush();
    writer.record({ ...first }); // a request id seen before changes nothing
    await writer.flush();
    const key = (await (await gw.admin(`/admin/keys/${id}`)).json()) as { credits_used: number };
    assert.equal(key.credits_used, 3.5);
    assert.deepEqual((await usageOf(`key_id=${id}`)).totals, totals(2, 0, 0, 3.5));
  });

  it('refuses bad parameters with 400 invalid_value naming the parameter', async () => {
    const cases: Record<string, string> = {
      'from=2003-03-02T00:00:00Z&to=2003-03-01T00:00:00Z': 'from',
      'from=yesterday': 'from',
      'to=2003-13-01': 'to',
      'key_id=not-a-uuid': 'key_id',
      'group_by=week': 'group_by',
      'group_by=key&group_by=day': 'group_by',
      'colour=blue': 'colour',
    };
    for (const [query, param] of Object.entries(cases)) {
      const res = await gw.admin(`/admin/usage?${query}`);
      assert.equal(res.status, 400, query);
      const body = (await res.json()) as ErrorEnvelope;
      assert.equal(body.error.code, 'invalid_value', query);
      assert.equal(body.error.param, param, query);
    }
  });

  it('answers 401 invalid_admin_token without the admin token', async () => {
    const { key } = await gw.createKey();
    for (const headers of [{}, { authorization: `Bearer ${key}` }] as Record<string, string>[]) {
      const res = await fetch(`${gw.url}/admin/usage`, { headers });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as ErrorEnvelope).error.code, 'invalid_admin_token');
    }
  });

  it('writes what is still queued when the gateway shuts down', async () => {
    // Without its timer only the shutdown sequence can write these, and it must do so before the
    // data source closes.
    clearInterval((writer as unknown as { timer: NodeJS.Timeout }).timer);
    const records = [usage({ model: `usage-shutdown-${tag}` }), usage({ model: `usage-shutdown-${tag}` })];
    for (const record of records) writer.record(record);
    assert.equal(writer.pending(), 2);
    closed = true;
    await gw.close();
    const client = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_records WHERE request_id = ANY($1)', [
        records.map((r) => r.request_id),
      ]);
      assert.equal(rows[0].n, 2);
    } finally {
      await client.end();
    }
  });
});
