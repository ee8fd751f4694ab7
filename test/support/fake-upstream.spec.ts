import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startAnthropicUpstream } from './anthropic-upstream';
import type { FakeUpstream } from './fake-upstream';
import { startOpenAIUpstream } from './openai-upstream';

// Wire JSON is read loosely here: the assertions themselves check its shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Wire = any;

interface SseEvent {
  event?: string;
  data: string;
}

/** Reads a body to its end, keeping what arrived before a failure. */
async function readAll(res: Response): Promise<{ text: string; error?: unknown }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text: text + decoder.decode() };
      text += decoder.decode(value, { stream: true });
    }
  } catch (error) {
    return { text, error };
  }
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((block) => block.length > 0)
    .map((block) => {
      const event: SseEvent = { data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event.event = line.slice(7);
        else if (line.startsWith('data: ')) event.data = line.slice(6);
      }
      return event;
    });
}

const OPENAI_HEADERS = { 'content-type': 'application/json', authorization: 'Bearer sk-test-key' };
const ANTHROPIC_HEADERS = { 'content-type': 'application/json', 'x-api-key': 'sk-ant-test', 'anthropic-version': '2023-06-01' };

function postJson(url: string, body: unknown, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
  return fetch(url, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body), signal });
}

const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'Say hello to the test' }],
  ...extra,
});

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
  },
};

describe('fake OpenAI upstream', () => {
  let up: FakeUpstream;
  let completions: string;

  before(async () => {
    up = await startOpenAIUpstream();
    completions = `${up.url}/chat/completions`;
  });
  after(() => up.close());
  beforeEach(() => up.reset());

  it('answers a chat.completion echoing the model, and records the request', async () => {
    up.set({ text: 'Four little words here' });
    const res = await postJson(completions, chat({ model: 'my-model', custom_field: 7 }), OPENAI_HEADERS);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/json/);
    const body = (await res.json()) as Wire;
    assert.match(body.id, /^chatcmpl-/);
    assert.equal(body.object, 'chat.completion');
    assert.equal(typeof body.created, 'number');
    assert.equal(body.model, 'my-model');
    assert.deepEqual(body.choices[0].message.role, 'assistant');
    assert.equal(body.choices[0].message.content, 'Four little words here');
    assert.equal(body.choices[0].finish_reason, 'stop');
    assert.equal(body.usage.prompt_tokens, 5);
    assert.equal(body.usage.completion_tokens, 4);
    assert.equal(body.usage.total_tokens, 9);

    assert.equal(up.requests.length, 1);
    const recorded = up.requests[0]!;
    assert.equal(recorded.method, 'POST');
    assert.equal(recorded.path, '/v1/chat/completions');
    assert.equal(recorded.headers.authorization, 'Bearer sk-test-key');
    assert.deepEqual((recorded.body as Record<string, unknown>).custom_field, 7);
    assert.equal(recorded.outcome, 'completed');
    assert.deepEqual(recorded.reply!.usage, body.usage);
  });

  it('streams SSE chunks exactly as OpenAI does, without a usage chunk unless asked', async () => {
    up.set({ text: 'one two three' });
    const res = await postJson(completions, chat({ stream: true }), OPENAI_HEADERS);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const { text, error } = await readAll(res);
    assert.equal(error, undefined);
    assert.ok(text.endsWith('data: [DONE]\n\n'));
    const events = parseSse(text);
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
    assert.equal(chunks[0].object, 'chat.completion.chunk');
    const content = chunks.slice(1, -1).map((c) => c.choices[0].delta.content as string);
    assert.deepEqual(content, ['one', ' two', ' three']);
    const finish = chunks[chunks.length - 1];
    assert.deepEqual(finish.choices[0].delta, {});
    assert.equal(finish.choices[0].finish_reason, 'stop');
    assert.ok(chunks.every((c) => !('usage' in c)));
    assert.equal(up.requests[0]!.reply!.usage, undefined);
  });

  it('ends the stream with a usage chunk with empty choices when include_usage is set', async () => {
    up.set({ text: 'alpha beta', chunks: 1 });
    const res = await postJson(completions, chat({ stream: true, stream_options: { include_usage: true } }), OPENAI_HEADERS);
    const events = parseSse((await readAll(res)).text);
    assert.equal(events[events.length - 1]!.data, '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    assert.equal(chunks.length, 4);
    const usageChunk = chunks[3];
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.usage.completion_tokens, 2);
    assert.deepEqual(usageChunk.usage, up.requests[0]!.reply!.usage);
    assert.ok(chunks.slice(0, 3).every((c) => c.usage === null));
  });

  it('answers tools with a tool call, streamed as id/name first and argument fragments after', async () => {
    const res = await postJson(completions, chat({ tools: [WEATHER_TOOL] }), OPENAI_HEADERS);
    const body = (await res.json()) as Wire;
    const message = body.choices[0].message;
    assert.equal(message.content, null);
    assert.equal(body.choices[0].finish_reason, 'tool_calls');
    assert.match(message.tool_calls[0].id, /^call_/);
    assert.equal(message.tool_calls[0].type, 'function');
    assert.equal(message.tool_calls[0].function.name, 'get_weather');
    assert.deepEqual(JSON.parse(message.tool_calls[0].function.arguments), { city: 'Paris', days: 42 });

    up.set({ toolArguments: { city: 'Lisbon, Portugal' } });
    const streamed = await postJson(completions, chat({ tools: [WEATHER_TOOL], stream: true }), OPENAI_HEADERS);
    const chunks = parseSse((await readAll(streamed)).text)
      .slice(0, -1)
      .map((e) => JSON.parse(e.data));
    const first = chunks[0].choices[0].delta.tool_calls[0];
    assert.equal(first.index, 0);
    assert.match(first.id, /^call_/);
    assert.equal(first.type, 'function');
    assert.deepEqual(first.function, { name: 'get_weather', arguments: '' });
    const fragments = chunks.slice(1, -1).map((c) => c.choices[0].delta.tool_calls[0]);
    assert.ok(fragments.length > 1);
    assert.ok(fragments.every((f) => f.index === 0 && f.id === undefined && f.function.name === undefined));
    assert.deepEqual(JSON.parse(fragments.map((f) => f.function.arguments).join('')), { city: 'Lisbon, Portugal' });
    assert.equal(chunks[chunks.length - 1].choices[0].finish_reason, 'tool_calls');
  });

  it('answers a tool result with text holding that result', async () => {
    const messages = [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny and 21C' },
    ];
    const res = await postJson(completions, chat({ messages, tools: [WEATHER_TOOL] }), OPENAI_HEADERS);
    const body = (await res.json()) as Wire;
    assert.equal(body.choices[0].finish_reason, 'stop');
    assert.match(body.choices[0].message.content, /sunny and 21C/);
  });

  it('accepts any base path ending in /v1 and lists models', async () => {
    const origin = up.url.replace(/\/v1$/, '');
    const res = await postJson(`${origin}/openai/proxy/v1/chat/completions`, chat(), OPENAI_HEADERS);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
    const models = await fetch(`${up.url}/models`, { headers: OPENAI_HEADERS });
    const list = (await models.json()) as Wire;
    assert.equal(list.object, 'list');
    assert.ok(list.data.length > 0);
    assert.equal(list.data[0].object, 'model');
  });

  it('refuses malformed JSON, a missing key and stream_options without stream in OpenAI error shape', async () => {
    const broken = await postJson(completions, '{"model": "x", "messages": [', OPENAI_HEADERS);
    assert.equal(broken.status, 400);
    const brokenBody = (await broken.json()) as Wire;
    assert.equal(brokenBody.error.type, 'invalid_request_error');
    assert.ok('param' in brokenBody.error && 'code' in brokenBody.error);

    const anonymous = await postJson(completions, chat(), { 'content-type': 'application/json' });
    assert.equal(anonymous.status, 401);
    await anonymous.arrayBuffer();

    const misplaced = await postJson(completions, chat({ stream_options: { include_usage: true } }), OPENAI_HEADERS);
    assert.equal(misplaced.status, 400);
    assert.equal(((await misplaced.json()) as Wire).error.param, 'stream_options');

    const fine = await postJson(completions, chat(), OPENAI_HEADERS);
    assert.equal(fine.status, 200);
    await fine.arrayBuffer();
  });

  it('fails only the next request when told to, with status, body and Retry-After', async () => {
    up.next({ fail: { status: 429, retryAfter: 7 } });
    const limited = await postJson(completions, chat(), OPENAI_HEADERS);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '7');
    assert.equal(((await limited.json()) as Wire).error.code, 'rate_limit_exceeded');
    const ok = await postJson(completions, chat(), OPENAI_HEADERS);
    assert.equal(ok.status, 200);
    await ok.arrayBuffer();
    assert.deepEqual(
      up.requests.map((r) => r.outcome),
      ['failed', 'completed'],
    );
  });

  it('sends a mid-stream error event and no [DONE]', async () => {
    up.next({ streamError: { afterChunks: 1 } });
    const res = await postJson(completions, chat({ stream: true }), OPENAI_HEADERS);
    const { text, error } = await readAll(res);
    assert.equal(error, undefined);
    assert.ok(!text.includes('[DONE]'));
    const last = JSON.parse(parseSse(text).at(-1)!.data);
    assert.equal(last.error.type, 'server_error');
    assert.equal(up.requests[0]!.outcome, 'stream-error');
  });

  it('omits usage when told to', async () => {
    up.set({ omitUsage: true });
    const res = await postJson(completions, chat(), OPENAI_HEADERS);
    assert.equal('usage' in ((await res.json()) as object), false);
  });
});

describe('fake Anthropic upstream', () => {
  let up: FakeUpstream;
  let messagesUrl: string;
  const request = (extra: Record<string, unknown> = {}) => ({
    model: 'claude-sonnet-4',
    max_tokens: 100,
    messages: [{ role: 'user', content: 'Hi there' }],
    ...extra,
  });
  const WEATHER = { name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } };

  before(async () => {
    up = await startAnthropicUpstream();
    messagesUrl = `${up.url}/v1/messages`;
  });
  after(() => up.close());
  beforeEach(() => up.reset());

  it('has a base url without /v1', () => {
    assert.doesNotMatch(up.url, /\/v1$/);
  });

  it('refuses a request without x-api-key with 401 authentication_error', async () => {
    const res = await postJson(messagesUrl, request(), { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' });
    assert.equal(res.status, 401);
    assert.deepEqual(await res.json(), { type: 'error', error: { type: 'authentication_error', message: 'x-api-key header is required' } });
  });

  it('refuses a missing anthropic-version, a missing max_tokens and unknown fields as the real API does', async () => {
    const noVersion = await postJson(messagesUrl, request(), { 'content-type': 'application/json', 'x-api-key': 'k' });
    assert.equal(noVersion.status, 400);
    await noVersion.arrayBuffer();
    const { max_tokens: _dropped, ...withoutMax } = request();
    const noMax = await postJson(messagesUrl, withoutMax, ANTHROPIC_HEADERS);
    assert.equal(noMax.status, 400);
    const body = (await noMax.json()) as Wire;
    assert.equal(body.type, 'error');
    assert.equal(body.error.type, 'invalid_request_error');
    assert.match(body.error.message, /max_tokens/);
    const extra = await postJson(messagesUrl, request({ stop: ['x'] }), ANTHROPIC_HEADERS);
    assert.equal(extra.status, 400);
    assert.match(((await extra.json()) as Wire).error.message, /stop: Extra inputs are not permitted/);
    const hot = await postJson(messagesUrl, request({ temperature: 1.5 }), ANTHROPIC_HEADERS);
    assert.equal(hot.status, 400);
    await hot.arrayBuffer();
    const malformed = await postJson(messagesUrl, '{nope', ANTHROPIC_HEADERS);
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as Wire).error.type, 'invalid_request_error');
  });

  it('answers a message with text content, stop_reason and usage', async () => {
    up.set({ text: 'Hello you two' });
    const res = await postJson(messagesUrl, request(), ANTHROPIC_HEADERS);
    assert.equal(res.status, 200);
    const body = (await res.json()) as Wire;
    assert.match(body.id, /^msg_/);
    assert.equal(body.type, 'message');
    assert.equal(body.role, 'assistant');
    assert.equal(body.model, 'claude-sonnet-4');
    assert.deepEqual(body.content, [{ type: 'text', text: 'Hello you two' }]);
    assert.equal(body.stop_reason, 'end_turn');
    assert.equal(body.stop_sequence, null);
    assert.equal(body.usage.input_tokens, 2);
    assert.equal(body.usage.output_tokens, 3);
    assert.deepEqual(up.requests[0]!.reply!.usage, body.usage);
  });

  it('reports stop_sequence and max_tokens stops', async () => {
    up.set({ text: 'one two three four five' });
    const stopped = (await (await postJson(messagesUrl, request({ stop_sequences: ['three'] }), ANTHROPIC_HEADERS)).json()) as Wire;
    assert.equal(stopped.stop_reason, 'stop_sequence');
    assert.equal(stopped.stop_sequence, 'three');
    assert.equal(stopped.content[0].text, 'one two ');
    const capped = (await (await postJson(messagesUrl, request({ max_tokens: 2 }), ANTHROPIC_HEADERS)).json()) as Wire;
    assert.equal(capped.stop_reason, 'max_tokens');
    assert.equal(capped.content[0].text, 'one two');
    assert.equal(capped.usage.output_tokens, 2);
  });

  it('answers tools with tool_use, and a tool_result with text', async () => {
    const res = await postJson(messagesUrl, request({ tools: [WEATHER] }), ANTHROPIC_HEADERS);
    const body = (await res.json()) as Wire;
    assert.equal(body.stop_reason, 'tool_use');
    const use = body.content[0];
    assert.equal(use.type, 'tool_use');
    assert.match(use.id, /^toolu_/);
    assert.equal(use.name, 'get_weather');
    assert.deepEqual(use.input, { city: 'Paris' });

    const followUp = request({
      tools: [WEATHER],
      messages: [
        { role: 'user', content: 'Weather?' },
        { role: 'assistant', content: [use] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: 'rainy, 12C' }] },
      ],
    });
    const answer = (await (await postJson(messagesUrl, followUp, ANTHROPIC_HEADERS)).json()) as Wire;
    assert.equal(answer.stop_reason, 'end_turn');
    assert.equal(answer.content[0].type, 'text');
    assert.match(answer.content[0].text, /rainy, 12C/);

    const orphan = request({ messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_x', content: 'r' }] }] });
    const refused = await postJson(messagesUrl, orphan, ANTHROPIC_HEADERS);
    assert.equal(refused.status, 400);
    await refused.arrayBuffer();
  });

  it('streams the Anthropic event sequence with text deltas', async () => {
    up.set({ text: 'a b c' });
    const res = await postJson(messagesUrl, request({ stream: true }), ANTHROPIC_HEADERS);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const events = parseSse((await readAll(res)).text);
    assert.deepEqual(
      events.map((e) => e.event),
      [
        'message_start',
        'content_block_start',
        'ping',
        'content_block_delta',
        'content_block_delta',
        'content_block_delta',
        'content_block_stop',
        'message_delta',
        'message_stop',
      ],
    );
    const data = events.map((e) => JSON.parse(e.data));
    assert.ok(events.every((e, i) => data[i].type === e.event));
    assert.equal(data[0].message.usage.input_tokens, 2);
    assert.deepEqual(data[1].content_block, { type: 'text', text: '' });
    assert.equal(data.slice(3, 6).map((d) => d.delta.text).join(''), 'a b c');
    assert.ok(data.slice(3, 6).every((d) => d.delta.type === 'text_delta'));
    assert.deepEqual(data[7].delta, { stop_reason: 'end_turn', stop_sequence: null });
    assert.equal(data[7].usage.output_tokens, 3);
  });

  it('streams tool_use input as input_json_delta fragments', async () => {
    up.set({ toolArguments: { city: 'Buenos Aires', units: 'metric' }, toolPreambleText: 'Let me check.' });
    const res = await postJson(messagesUrl, request({ stream: true, tools: [WEATHER] }), ANTHROPIC_HEADERS);
    const data = parseSse((await readAll(res)).text).map((e) => JSON.parse(e.data));
    const starts = data.filter((d) => d.type === 'content_block_start');
    assert.deepEqual(starts.map((s) => s.content_block.type), ['text', 'tool_use']);
    assert.equal(starts[1].index, 1);
    assert.equal(starts[1].content_block.name, 'get_weather');
    const json = data
      .filter((d) => d.type === 'content_block_delta' && d.delta.type === 'input_json_delta')
      .map((d) => d.delta.partial_json)
      .join('');
    assert.deepEqual(JSON.parse(json), { city: 'Buenos Aires', units: 'metric' });
    assert.equal(data.find((d) => d.type === 'message_delta').delta.stop_reason, 'tool_use');
  });

  it('answers 529 overloaded_error when told to, and sends a mid-stream error event', async () => {
    up.next({ fail: { status: 529 } }, { streamError: { afterChunks: 1 } });
    const overloaded = await postJson(messagesUrl, request(), ANTHROPIC_HEADERS);
    assert.equal(overloaded.status, 529);
    assert.deepEqual(await overloaded.json(), { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    const res = await postJson(messagesUrl, request({ stream: true }), ANTHROPIC_HEADERS);
    const events = parseSse((await readAll(res)).text);
    const last = events.at(-1)!;
    assert.equal(last.event, 'error');
    assert.equal(JSON.parse(last.data).error.type, 'overloaded_error');
    assert.ok(!events.some((e) => e.event === 'message_stop'));
  });
});

describe('fake upstream controls', () => {
  let up: FakeUpstream;
  let completions: string;

  before(async () => {
    up = await startOpenAIUpstream();
    completions = `${up.url}/chat/completions`;
  });
  after(() => up.close());
  beforeEach(() => up.reset());

  it('cuts the stream after N chunks without a terminating event, and it is not an abort', async () => {
    up.next({ text: 'a b c d e f', cutAfterChunks: 2 });
    const res = await postJson(completions, chat({ stream: true }), OPENAI_HEADERS);
    const { text, error } = await readAll(res);
    assert.ok(error, 'the client sees the body end abnormally');
    assert.ok(!text.includes('[DONE]'));
    const content = parseSse(text)
      .map((e) => JSON.parse(e.data))
      .filter((c) => typeof c.choices[0].delta.content === 'string' && c.choices[0].delta.content.length > 0);
    assert.equal(content.length, 2);
    assert.equal(up.requests[0]!.outcome, 'cut');
    assert.equal(up.aborts, 0);
  });

  it('drops the connection without an answer when told to', async () => {
    up.next({ dropConnection: true });
    await assert.rejects(postJson(completions, chat(), OPENAI_HEADERS));
    assert.equal(up.requests[0]!.outcome, 'dropped');
  });

  it('waits delayMs before answering and chunkDelayMs between chunks', async () => {
    up.next({ delayMs: 150 }, { chunkDelayMs: 60, chunks: 4 });
    let start = performance.now();
    const delayed = await postJson(completions, chat(), OPENAI_HEADERS);
    assert.ok(performance.now() - start >= 130);
    await delayed.arrayBuffer();
    start = performance.now();
    const streamed = await postJson(completions, chat({ stream: true }), OPENAI_HEADERS);
    await readAll(streamed);
    assert.ok(performance.now() - start >= 3 * 60 - 20);
  });

  it('tracks in-flight requests and their peak', async () => {
    up.set({ delayMs: 200 });
    const pending = Array.from({ length: 5 }, () => postJson(completions, chat(), OPENAI_HEADERS).then((r) => r.arrayBuffer()));
    await up.waitForRequests(5);
    assert.equal(up.inFlight, 5);
    await Promise.all(pending);
    assert.equal(up.peakConcurrency, 5);
    assert.equal(up.inFlight, 0);
    up.reset();
    assert.equal(up.peakConcurrency, 0);
    assert.equal(up.requests.length, 0);
  });

  it('detects a client abort on a request it holds forever', async () => {
    up.next({ hang: true });
    const controller = new AbortController();
    const pending = postJson(completions, chat(), OPENAI_HEADERS, controller.signal);
    await up.waitForRequests(1);
    controller.abort();
    await assert.rejects(pending);
    const abort = await up.waitForAbort(2000);
    assert.equal(abort.request?.outcome, 'aborted');
    assert.equal(up.aborts, 1);
    assert.equal(up.inFlight, 0);
  });

  it('detects a client abort in the middle of a stream', async () => {
    up.next({ hangAfterChunks: 1 });
    const controller = new AbortController();
    const res = await postJson(completions, chat({ stream: true }), OPENAI_HEADERS, controller.signal);
    const reader = res.body!.getReader();
    await reader.read();
    controller.abort();
    await up.waitForAbort(2000);
    assert.equal(up.aborts, 1);
  });

  it('rejects waitForAbort when no abort comes in time', async () => {
    await assert.rejects(up.waitForAbort(50), /no client abort/);
  });

  it('closes idle keep-alive and held connections on close()', async () => {
    const own = await startAnthropicUpstream({ hang: true });
    const res = await fetch(`${own.url}/v1/models`, { headers: ANTHROPIC_HEADERS });
    await res.arrayBuffer();
    const held = postJson(`${own.url}/v1/messages`, { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'x' }] }, ANTHROPIC_HEADERS);
    await own.waitForRequests(2);
    await own.close();
    await assert.rejects(held);
    assert.equal(own.aborts, 0);
  });
});
