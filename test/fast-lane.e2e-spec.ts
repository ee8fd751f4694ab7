import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { apiError } from './support/http';
import { TestGateway, startTestGateway } from './support/test-gateway';

/** Whether node:http hands requests to something other than the Express app (the fast lane). */
function fastLaneInstalled(gw: TestGateway): boolean {
  const server = gw.app.getHttpServer() as Server;
  const express = gw.app.getHttpAdapter().getInstance() as unknown;
  const listeners = server.listeners('request');
  assert.equal(listeners.length, 1);
  return listeners[0] !== express;
}

async function post(url: string, path: string, key: string, body: string) {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body });
  return { res, text: await res.text() };
}

const BODY = JSON.stringify({ model: 'kiro', messages: [{ role: 'user', content: 'hi' }] });

/**
 * POST /v1/chat/completions is served from node:http ahead of Express (CompletionsFastLane); the
 * spellings it leaves out, and every completion while request lines are logged, go through Nest's
 * route. Both must answer alike.
 */
describe('completions fast lane', () => {
  let gw: TestGateway;
  let key: string;

  before(async () => {
    gw = await startTestGateway();
    ({ key } = await gw.createKey({ rate_limit_per_minute: 1000 }));
  });
  after(() => gw.close());

  it('is installed when request lines are not logged', () => {
    assert.equal(fastLaneInstalled(gw), true);
  });

  it('answers the exact path, a query string and a trailing slash alike', async () => {
    for (const path of ['/v1/chat/completions', '/v1/chat/completions?trace=1', '/v1/chat/completions/']) {
      const { res, text } = await post(gw.url, path, key, BODY);
      assert.equal(res.status, 200, `${path}: ${text}`);
      assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8', path);
      assert.equal(res.headers.get('x-ratelimit-limit'), '1000', path);
      assert.match(res.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/, path);
      assert.equal((JSON.parse(text) as { object: string }).object, 'chat.completion', path);
    }
  });

  it('refuses alike on both routes: no key 401, bad JSON 400, unknown model 404', async () => {
    for (const path of ['/v1/chat/completions', '/v1/chat/completions/']) {
      const missing = await post(gw.url, path, '', BODY);
      assert.equal(missing.res.status, 401, path);
      assert.equal((JSON.parse(missing.text) as { error: { code: string } }).error.code, 'missing_api_key', path);
      assert.equal(missing.res.headers.get('x-ratelimit-limit'), null, `${path}: no rate-limit headers before authentication`);
      const bad = await post(gw.url, path, key, '{"model":');
      assert.equal(bad.res.status, 400, path);
      assert.equal((JSON.parse(bad.text) as { error: { code: string } }).error.code, 'invalid_json', path);
      assert.equal(bad.res.headers.get('x-ratelimit-limit'), '1000', `${path}: refusals after the rate limit carry its headers`);
      const unknown = await post(gw.url, path, key, JSON.stringify({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }));
      assert.equal(unknown.res.status, 404, path);
    }
  });

  it('leaves other methods on the path to Express (404)', async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(res.status, 404);
  });
});

describe('completions with request lines logged (LOG_LEVEL=debug)', () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startTestGateway({ env: { LOG_LEVEL: 'debug' } });
  });
  after(() => gw.close());

  it('are served through Express and Nest, with the same answers', async () => {
    assert.equal(fastLaneInstalled(gw), false);
    const { key } = await gw.createKey();
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 });
    const completion = await client.chat.completions.create({ model: 'kiro', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(completion.object, 'chat.completion');
    const stream = await client.chat.completions.create({ model: 'kiro', messages: [{ role: 'user', content: 'hi' }], stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    assert.ok(text.length > 0);
    const refused = await apiError(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(refused.status, 404);
  });
});
