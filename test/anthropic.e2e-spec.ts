import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import OpenAI from 'openai';
import { sseData } from './support/http';
import type { ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionTool } from 'openai/resources/chat/completions';
import { startAnthropicUpstream } from './support/anthropic-upstream';
import type { FakeUpstream, RecordedRequest } from './support/fake-upstream';
import { ErrorEnvelope, TestGateway, startTestGateway } from './support/test-gateway';
import { waitForUsageRows } from './support/usage-rows';

/*
 * The Anthropic adapter end to end (DESIGN §3.2, §3.6): the official OpenAI SDK talks to the
 * gateway, the gateway talks to a fake Anthropic Messages API that applies the real API's
 * validation, and the tests read both what the client got and what the upstream received.
 */

const UPSTREAM_KEY = 'sk-ant-test';

const MODEL = { id: 'claude', upstream_model: 'claude-sonnet-4', credits: { per_request: 0, per_1k_prompt_tokens: 1000, per_1k_completion_tokens: 1000 } };

function account(id: string, url: string, apiKey: string) {
  return { id, provider: 'anthropic', base_url: url, api_key: apiKey, max_concurrency: 4, max_tokens_default: 1234 };
}

const WEATHER_TOOL: ChatCompletionTool = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' }, days: { type: 'integer' } }, required: ['city'] },
  },
};
const WEATHER_ARGS = { city: 'Paris', unit: 'celsius', days: 3 };

/** The Anthropic request body as the fake upstream received it. */
interface SentBody {
  model: string;
  max_tokens: number;
  system?: unknown;
  messages: { role: string; content: unknown }[];
  stop_sequences?: string[];
  stream?: boolean;
  tools?: { name: string; description?: string; input_schema: unknown }[];
  [field: string]: unknown;
}

function bodyOf(request: RecordedRequest | undefined): SentBody {
  assert.ok(request, 'the upstream received no request');
  return request.body as SentBody;
}

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

function contentOf(chunks: ChatCompletionChunk[]): string {
  return chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
}

function finishOf(chunks: ChatCompletionChunk[]): string | null | undefined {
  return chunks.map((c) => c.choices[0]?.finish_reason).filter((f) => f != null).at(-1);
}

describe('anthropic upstream', () => {
  let up: FakeUpstream;
  let gw: TestGateway;
  let key: string;
  let client: OpenAI;

  const post = (body: unknown, clientKey = key) =>
    fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${clientKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  before(async () => {
    // The fake refuses any other x-api-key, so every answer below also proves the key was sent.
    up = await startAnthropicUpstream({ apiKey: UPSTREAM_KEY });
    gw = await startTestGateway({ config: { models: [MODEL], accounts: [account('anth-1', up.url, UPSTREAM_KEY)] } });
    key = (await gw.createKey()).key;
    client = new OpenAI({ apiKey: key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });
  beforeEach(() => up.reset());

  it('answers a text completion under the client model id', async () => {
    up.next({ text: 'Bonjour from the fake Claude.' });
    const completion = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'Say hello' }] });
    assert.equal(completion.model, 'claude');
    assert.equal(completion.object, 'chat.completion');
    assert.equal(completion.choices.length, 1);
    assert.equal(completion.choices[0].message.role, 'assistant');
    assert.equal(completion.choices[0].message.content, 'Bonjour from the fake Claude.');
    assert.equal(completion.choices[0].finish_reason, 'stop');

    assert.equal(up.requests.length, 1);
    assert.equal(up.requests[0].path, '/v1/messages');
    const sent = bodyOf(up.requests[0]);
    assert.equal(sent.model, 'claude-sonnet-4');
    assert.notEqual(sent.stream, true);
    assert.deepEqual(sent.messages, [{ role: 'user', content: [{ type: 'text', text: 'Say hello' }] }]);
  });

  it('streams a text completion, assembled in order under the client model id', async () => {
    up.next({ text: 'one two three four five' });
    const stream = await client.chat.completions.create({ model: 'claude', stream: true, messages: [{ role: 'user', content: 'Count' }] });
    const chunks = await collect(stream);
    assert.ok(chunks.length >= 5, `only ${chunks.length} chunks`);
    assert.equal(contentOf(chunks), 'one two three four five');
    for (const chunk of chunks) {
      assert.equal(chunk.model, 'claude');
      assert.equal(chunk.object, 'chat.completion.chunk');
    }
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    assert.equal(finishOf(chunks), 'stop');
    assert.ok(chunks.every((c) => c.usage == null), 'usage chunk sent without include_usage');

    const sent = bodyOf(up.requests[0]);
    assert.equal(sent.stream, true);
    assert.equal(sent.model, 'claude-sonnet-4');
  });

  it('sends the account key and anthropic-version, never the client key', async () => {
    await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] });
    await collect(await client.chat.completions.create({ model: 'claude', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(up.requests.length, 2);
    for (const request of up.requests) {
      assert.equal(request.method, 'POST');
      assert.equal(request.path, '/v1/messages');
      assert.equal(request.headers['x-api-key'], UPSTREAM_KEY);
      assert.equal(request.headers['anthropic-version'], '2023-06-01');
      assert.ok(!JSON.stringify(request.headers).includes(key), 'the client key reached the upstream');
      assert.ok(!request.rawBody.includes(key), 'the client key reached the upstream body');
    }
  });

  it('joins system and developer messages into system and merges consecutive turns', async () => {
    const messages: ChatCompletionMessageParam[] = [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'First question.' },
      { role: 'user', content: 'Second question.' },
      { role: 'developer', content: 'Answer in English.' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_a', content: '18C' },
      { role: 'tool', tool_call_id: 'call_b', content: '24C' },
      { role: 'user', content: 'Which is warmer?' },
    ];
    await client.chat.completions.create({ model: 'claude', messages, tools: [WEATHER_TOOL] });

    const sent = bodyOf(up.requests[0]);
    assert.equal(typeof sent.system, 'string');
    assert.match(sent.system as string, /^You are terse\.\s*Answer in English\.$/);
    assert.deepEqual(sent.messages, [
      {
        role: 'user',
        content: [
          { type: 'text', text: 'First question.' },
          { type: 'text', text: 'Second question.' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'call_a', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_b', name: 'get_weather', input: { city: 'Rome' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_a', content: '18C' },
          { type: 'tool_result', tool_use_id: 'call_b', content: '24C' },
          { type: 'text', text: 'Which is warmer?' },
        ],
      },
    ]);
    assert.deepEqual(sent.tools, [
      { name: 'get_weather', description: 'Current weather for a city', input_schema: WEATHER_TOOL.function.parameters },
    ]);
  });

  it('sends max_tokens: the account default, else the client max_completion_tokens or max_tokens', async () => {
    const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: 'hi' }];
    await client.chat.completions.create({ model: 'claude', messages });
    await client.chat.completions.create({ model: 'claude', messages, max_completion_tokens: 77 });
    await client.chat.completions.create({ model: 'claude', messages, max_tokens: 55 });
    await collect(await client.chat.completions.create({ model: 'claude', messages, stream: true }));
    assert.deepEqual(
      up.requests.map((r) => bodyOf(r).max_tokens),
      [1234, 77, 55, 1234],
    );
  });

  it('maps stop to stop_sequences and a matched stop sequence to finish_reason stop', async () => {
    up.next({ text: 'alpha beta END gamma delta' }, { text: 'alpha beta END gamma delta' });
    const completion = await client.chat.completions.create({
      model: 'claude',
      messages: [{ role: 'user', content: 'go' }],
      stop: ['END', 'HALT'],
    });
    assert.equal(completion.choices[0].message.content, 'alpha beta ');
    assert.equal(completion.choices[0].finish_reason, 'stop');

    const chunks = await collect(
      await client.chat.completions.create({ model: 'claude', stream: true, messages: [{ role: 'user', content: 'go' }], stop: 'END' }),
    );
    assert.equal(contentOf(chunks), 'alpha beta ');
    assert.equal(finishOf(chunks), 'stop');

    assert.deepEqual(bodyOf(up.requests[0]).stop_sequences, ['END', 'HALT']);
    assert.deepEqual(bodyOf(up.requests[1]).stop_sequences, ['END']);
    assert.equal(up.requests[0].reply?.finishReason, 'stop_sequence');
    assert.equal(up.requests[1].reply?.finishReason, 'stop_sequence');
  });

  it('maps max_tokens stops to finish_reason length, streamed or not', async () => {
    const text = 'one two three four five six seven';
    up.next({ text }, { text });
    const completion = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'go' }], max_completion_tokens: 3 });
    assert.equal(completion.choices[0].message.content, 'one two three');
    assert.equal(completion.choices[0].finish_reason, 'length');

    const chunks = await collect(
      await client.chat.completions.create({ model: 'claude', stream: true, messages: [{ role: 'user', content: 'go' }], max_tokens: 3 }),
    );
    assert.equal(contentOf(chunks), 'one two three');
    assert.equal(finishOf(chunks), 'length');
    assert.deepEqual(
      up.requests.map((r) => r.reply?.finishReason),
      ['max_tokens', 'max_tokens'],
    );
  });

  it('round-trips a tool call without streaming', async () => {
    up.next({ toolArguments: WEATHER_ARGS });
    const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const first = await client.chat.completions.create({ model: 'claude', messages, tools: [WEATHER_TOOL] });
    assert.equal(first.model, 'claude');
    assert.equal(first.choices[0].finish_reason, 'tool_calls');
    const call = first.choices[0].message.tool_calls?.[0];
    assert.ok(call && call.type === 'function', 'no tool call');
    assert.equal(first.choices[0].message.tool_calls?.length, 1);
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), WEATHER_ARGS);
    assert.equal(call.id, up.requests[0].reply?.toolCall?.id);

    messages.push(first.choices[0].message, { role: 'tool', tool_call_id: call.id, content: '18 degrees and sunny' });
    const second = await client.chat.completions.create({ model: 'claude', messages, tools: [WEATHER_TOOL] });
    assert.equal(second.choices[0].finish_reason, 'stop');
    assert.equal(second.choices[0].message.content, 'Tool result: 18 degrees and sunny');
    assert.equal(second.model, 'claude');

    assert.equal(up.requests.length, 2);
    const [sent1, sent2] = [bodyOf(up.requests[0]), bodyOf(up.requests[1])];
    assert.deepEqual(sent1.tools?.map((t) => t.input_schema), [WEATHER_TOOL.function.parameters]);
    assert.deepEqual(sent2.messages, [
      { role: 'user', content: [{ type: 'text', text: 'What is the weather in Paris?' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: call.id, name: 'get_weather', input: WEATHER_ARGS }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '18 degrees and sunny' }] },
    ]);
  });

  it('round-trips a tool call while streaming, the SDK reassembling name and arguments', async () => {
    up.next({ toolArguments: WEATHER_ARGS });
    const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const stream = client.chat.completions.stream({ model: 'claude', messages, tools: [WEATHER_TOOL] });
    const chunks: ChatCompletionChunk[] = [];
    stream.on('chunk', (chunk) => chunks.push(chunk));
    const first = await stream.finalChatCompletion();
    // The arguments really arrived in pieces, not as one chunk.
    const argumentDeltas = chunks.filter((c) => c.choices[0]?.delta?.tool_calls?.some((t) => t.function?.arguments)).length;
    assert.ok(argumentDeltas >= 2, `arguments came in ${argumentDeltas} chunks`);
    assert.ok(chunks.every((c) => c.model === 'claude'));

    assert.equal(first.choices[0].finish_reason, 'tool_calls');
    const calls = first.choices[0].message.tool_calls ?? [];
    assert.equal(calls.length, 1);
    const call = calls[0];
    assert.ok(call.type === 'function');
    assert.equal(call.id, up.requests[0].reply?.toolCall?.id);
    assert.equal(call.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(call.function.arguments), WEATHER_ARGS);

    messages.push(
      { role: 'assistant', content: first.choices[0].message.content ?? null, tool_calls: [call] },
      { role: 'tool', tool_call_id: call.id, content: '18 degrees and sunny' },
    );
    const second = await collect(await client.chat.completions.create({ model: 'claude', stream: true, messages, tools: [WEATHER_TOOL] }));
    assert.equal(contentOf(second), 'Tool result: 18 degrees and sunny');
    assert.equal(finishOf(second), 'stop');

    assert.equal(up.requests.length, 2);
    assert.ok(up.requests.every((r) => bodyOf(r).stream === true));
    assert.deepEqual(bodyOf(up.requests[1]).messages, [
      { role: 'user', content: [{ type: 'text', text: 'What is the weather in Paris?' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: call.id, name: 'get_weather', input: WEATHER_ARGS }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: '18 degrees and sunny' }] },
    ]);
  });

  it('maps usage: prompt = input + cache tokens, completion = output', async () => {
    up.next({ cacheReadTokens: 7, cacheCreationTokens: 5 });
    const completion = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'how many tokens is this' }] });
    const sent = up.requests[0].reply?.usage as { input_tokens: number; output_tokens: number };
    assert.ok(sent.input_tokens > 0 && sent.output_tokens > 0);
    assert.deepEqual(completion.usage, {
      prompt_tokens: sent.input_tokens + 12,
      completion_tokens: sent.output_tokens,
      total_tokens: sent.input_tokens + 12 + sent.output_tokens,
    });
  });

  it('sends the usage chunk last before [DONE] only when include_usage is asked', async () => {
    up.next({ cacheReadTokens: 7, cacheCreationTokens: 5 });
    const res = await post({
      model: 'claude',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'how many tokens is this' }],
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const payloads = sseData(await res.text());
    assert.equal(payloads.at(-1), '[DONE]');
    const usageChunk = JSON.parse(payloads.at(-2)!) as ChatCompletionChunk;
    assert.deepEqual(usageChunk.choices, []);
    assert.equal(usageChunk.model, 'claude');
    const sent = up.requests[0].reply?.usage as { input_tokens: number; output_tokens: number };
    assert.deepEqual(usageChunk.usage, {
      prompt_tokens: sent.input_tokens + 12,
      completion_tokens: sent.output_tokens,
      total_tokens: sent.input_tokens + 12 + sent.output_tokens,
    });
    const others = payloads.slice(0, -2).map((p) => JSON.parse(p) as ChatCompletionChunk);
    assert.ok(others.every((c) => c.choices.length === 1 && c.usage == null), 'usage before the last chunk');

    const plain = await post({ model: 'claude', stream: true, messages: [{ role: 'user', content: 'again' }] });
    const plainPayloads = sseData(await plain.text());
    assert.equal(plainPayloads.at(-1), '[DONE]');
    for (const payload of plainPayloads.slice(0, -1)) {
      const chunk = JSON.parse(payload) as ChatCompletionChunk;
      assert.equal(chunk.choices.length, 1, 'a chunk without choices reached a client that asked for no usage');
      assert.equal(chunk.usage ?? null, null);
    }
  });

  it('records the upstream token counts and their credits in usage_records', async () => {
    const usageKey = await gw.createKey({ name: 'anthropic usage' });
    const usageClient = new OpenAI({ apiKey: usageKey.key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
    up.next({ cacheReadTokens: 7, cacheCreationTokens: 5 }, { cacheReadTokens: 3, cacheCreationTokens: 0 });
    const completion = await usageClient.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'count me please' }] });
    const chunks = await collect(
      await usageClient.chat.completions.create({
        model: 'claude',
        stream: true,
        stream_options: { include_usage: true },
        messages: [{ role: 'user', content: 'count me too' }],
      }),
    );
    const streamed = chunks.at(-1)?.usage;
    assert.ok(completion.usage && streamed);

    const rows = await waitForUsageRows(usageKey.id, 2, 5000);
    assert.equal(rows.length, 2);
    const [plain, stream] = [rows.find((r) => !r.stream), rows.find((r) => r.stream)];
    assert.ok(plain && stream, 'one streamed and one plain row expected');
    for (const [row, usage] of [
      [plain, completion.usage],
      [stream, streamed],
    ] as const) {
      assert.equal(row.model, 'claude');
      assert.equal(row.account_id, 'anth-1');
      assert.equal(row.status, 'success');
      assert.equal(row.http_status, 200);
      assert.equal(row.usage_estimated, false);
      assert.equal(row.prompt_tokens, usage.prompt_tokens);
      assert.equal(row.completion_tokens, usage.completion_tokens);
      assert.equal(row.total_tokens, usage.prompt_tokens + usage.completion_tokens);
      // 1000 credits per 1k tokens either way: one credit per token.
      assert.equal(row.credits, usage.prompt_tokens + usage.completion_tokens);
    }
    const replies = up.requests.map((r) => r.reply!);
    assert.deepEqual(
      [plain.prompt_tokens, stream.prompt_tokens],
      replies.map((r) => r.promptTokens),
    );
    assert.deepEqual(
      [plain.completion_tokens, stream.completion_tokens],
      replies.map((r) => r.completionTokens),
    );
  });

  it('ends a stream that fails mid-way with the SSE error event and no [DONE]', async () => {
    up.next({ text: 'one two three four five six', streamError: { afterChunks: 2, type: 'overloaded_error', message: 'Overloaded' } });
    const res = await post({ model: 'claude', stream: true, messages: [{ role: 'user', content: 'go' }] });
    assert.equal(res.status, 200);
    const text = await res.text();
    assert.ok(!text.includes('data: [DONE]'), 'a failed stream ended with [DONE]');
    const payloads = sseData(text);
    const last = JSON.parse(payloads.at(-1)!) as ErrorEnvelope;
    assert.ok(last.error, `last event is not an error: ${payloads.at(-1)}`);
    assert.equal(typeof last.error.message, 'string');
    assert.ok(last.error.message.length > 0);
    assert.equal(typeof last.error.code, 'string');
    assert.ok(last.error.code.length > 0);
    assert.ok(!text.includes(UPSTREAM_KEY));
    const delivered = payloads.slice(0, -1).map((p) => JSON.parse(p) as ChatCompletionChunk);
    assert.equal(contentOf(delivered), 'one two');
    assert.equal(up.requests[0].outcome, 'stream-error');
  });

  it('makes the SDK stream iteration throw on a mid-stream error', async () => {
    up.next({ text: 'one two three four five six', streamError: { afterChunks: 2 } });
    const stream = await client.chat.completions.create({ model: 'claude', stream: true, messages: [{ role: 'user', content: 'go' }] });
    const seen: ChatCompletionChunk[] = [];
    await assert.rejects(async () => {
      for await (const chunk of stream) seen.push(chunk);
    }, OpenAI.APIError);
    assert.equal(contentOf(seen), 'one two');
  });

  it('passes an upstream 400 through with its status and message', async () => {
    const message = 'prompt is too long: 250123 tokens > 200000 maximum';
    up.next({ fail: { status: 400, message } }, { fail: { status: 400, message } });
    for (const stream of [false, true]) {
      const res = await post({ model: 'claude', stream, messages: [{ role: 'user', content: 'go' }] });
      assert.equal(res.status, 400, `stream: ${stream}`);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const body = (await res.json()) as ErrorEnvelope;
      assert.equal(body.error.message, message);
      assert.equal(body.error.type, 'invalid_request_error');
      assert.equal(typeof body.error.code, 'string');
    }
    await assert.rejects(
      () => client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'go' }], tools: [{ type: 'function', function: { name: 'bad name!' } }] }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && err.status === 400 && err.message.includes('tools.0.name'),
    );
    assert.equal(up.requests.length, 3, 'a client error was retried');
  });
});

describe('anthropic upstream failover', () => {
  let up: FakeUpstream;
  let gw: TestGateway;
  let client: OpenAI;
  const keys = ['sk-ant-first', 'sk-ant-second'];

  before(async () => {
    // Two accounts on one fake, told apart by their keys: whichever is picked first gets the 529.
    up = await startAnthropicUpstream();
    gw = await startTestGateway({
      config: { models: [MODEL], accounts: [account('anth-1', up.url, keys[0]), account('anth-2', up.url, keys[1])] },
    });
    client = new OpenAI({ apiKey: (await gw.createKey()).key, baseURL: `${gw.url}/v1`, maxRetries: 0 });
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });
  beforeEach(() => up.reset());

  function assertFailedOver(): void {
    assert.equal(up.requests.length, 2);
    assert.equal(up.requests[0].status, 529);
    assert.equal(up.requests[1].status, 200);
    const used = up.requests.map((r) => r.headers['x-api-key']);
    assert.notEqual(used[0], used[1], 'the retry went to the same account');
    assert.deepEqual([...used].sort(), [...keys].sort());
  }

  it('529 overloaded on one account fails over to the other', async () => {
    up.next({ fail: { status: 529 } }, { text: 'served by the second account' });
    const completion = await client.chat.completions.create({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(completion.choices[0].message.content, 'served by the second account');
    assertFailedOver();
  });

  it('529 overloaded before a stream starts fails over to the other account', async () => {
    up.next({ fail: { status: 529 } }, { text: 'streamed by the second account' });
    const chunks = await collect(await client.chat.completions.create({ model: 'claude', stream: true, messages: [{ role: 'user', content: 'hi' }] }));
    assert.equal(contentOf(chunks), 'streamed by the second account');
    assert.equal(finishOf(chunks), 'stop');
    assertFailedOver();
  });
});

describe('anthropic upstream refusing the account key', () => {
  let up: FakeUpstream;
  let gw: TestGateway;
  let key: string;
  const upstreamKey = `sk-ant-${randomBytes(16).toString('hex')}`;

  before(async () => {
    up = await startAnthropicUpstream();
    gw = await startTestGateway({ config: { models: [MODEL], accounts: [account('anth-1', up.url, upstreamKey)] } });
    key = (await gw.createKey()).key;
  });
  after(async () => {
    await gw?.close();
    await up?.close();
  });

  it('answers 502 for an upstream 401 and never echoes the upstream key', async () => {
    // An upstream that quotes the key back: the gateway must not relay its message.
    up.next({ fail: { status: 401, message: `invalid x-api-key: ${upstreamKey}` } });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] }),
    });
    const text = await res.text();
    assert.equal(res.status, 502, text);
    const body = JSON.parse(text) as ErrorEnvelope;
    assert.equal(body.error.code, 'upstream_error');
    assert.equal(body.error.type, 'upstream_error');
    assert.ok(!text.includes(upstreamKey), 'the upstream key reached the client');
    assert.ok(!text.includes('invalid x-api-key'), 'the upstream auth message reached the client');
    assert.equal(up.requests.length, 1);
    assert.equal(up.requests[0].headers['x-api-key'], upstreamKey);

    const accounts = await (await gw.admin('/admin/accounts')).text();
    assert.ok(!accounts.includes(upstreamKey), 'the upstream key is shown by the admin API');
    const account = (JSON.parse(accounts) as { data: { id: string; status: string }[] }).data.find((a) => a.id === 'anth-1');
    assert.equal(account?.status, 'unhealthy');
  });
});
