import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ChatMessage, ChatRequest } from '../openai-types';
import { UpstreamError } from '../upstream-error';
import { OPENING_USER_TEXT, toAnthropicRequest } from './anthropic-request';

const DEFAULT_MAX = 4096;

function request(messages: ChatMessage[], extra: Partial<ChatRequest> = {}): ChatRequest {
  return { model: 'claude-test', messages, ...extra };
}

describe('OpenAI request → Anthropic request', () => {
  it('moves system and developer messages, array parts included, into one system string', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: [{ type: 'text', text: 'Part one.' }, { type: 'text', text: 'Part two.' }] },
        { role: 'user', content: 'Hi' },
      ]),
      DEFAULT_MAX,
    );
    assert.equal(out.system, 'Be brief.\n\nPart one.\n\nPart two.');
    assert.deepEqual(out.messages, [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }]);
  });

  it('sends no system field when there is no system message', () => {
    const out = toAnthropicRequest(request([{ role: 'user', content: 'Hi' }]), DEFAULT_MAX);
    assert.equal('system' in out, false);
  });

  it('keeps user and assistant text turns in order', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'user', content: 'Hello' },
        { role: 'assistant', content: 'Hi there' },
        { role: 'user', content: [{ type: 'text', text: 'How are you?' }] },
      ]),
      DEFAULT_MAX,
    );
    assert.deepEqual(out.messages, [
      { role: 'user', content: [{ type: 'text', text: 'Hello' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Hi there' }] },
      { role: 'user', content: [{ type: 'text', text: 'How are you?' }] },
    ]);
  });

  it('turns a base64 data URL into a base64 image source and an http(s) URL into a url source', () => {
    const out = toAnthropicRequest(
      request([
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Compare these' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' } },
            { type: 'image_url', image_url: { url: 'http://example.com/dog.gif' } },
          ],
        },
      ]),
      DEFAULT_MAX,
    );
    assert.deepEqual(out.messages[0].content, [
      { type: 'text', text: 'Compare these' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
      { type: 'image', source: { type: 'url', url: 'http://example.com/dog.gif' } },
    ]);
  });

  it('base64-encodes a data URL that is not base64 already', () => {
    const out = toAnthropicRequest(
      request([{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/svg+xml,%3Csvg%2F%3E' } }] }]),
      DEFAULT_MAX,
    );
    assert.deepEqual(out.messages[0].content[0], {
      type: 'image',
      source: { type: 'base64', media_type: 'image/svg+xml', data: Buffer.from('<svg/>').toString('base64') },
    });
  });

  it('refuses content parts Anthropic cannot take with a client error naming the part', () => {
    assert.throws(
      () =>
        toAnthropicRequest(
          request([
            { role: 'user', content: 'first' },
            { role: 'user', content: [{ type: 'text', text: 'hear this' }, { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] },
          ]),
          DEFAULT_MAX,
        ),
      (error: unknown) =>
        error instanceof UpstreamError &&
        error.failure === 'client' &&
        error.status === 400 &&
        error.message.includes('messages[1].content[1]') &&
        error.message.includes('input_audio'),
    );
  });

  it('drops empty text, which Anthropic rejects', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'user', content: [{ type: 'text', text: '' }, { type: 'text', text: 'Hi' }] },
        { role: 'assistant', content: '' },
        { role: 'user', content: 'Again' },
      ]),
      DEFAULT_MAX,
    );
    assert.deepEqual(out.messages, [{ role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'text', text: 'Again' }] }]);
  });

  it('merges consecutive same-role messages into one turn', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'user', content: 'one' },
        { role: 'user', content: 'two' },
        { role: 'assistant', content: 'three' },
        { role: 'assistant', content: 'four' },
      ]),
      DEFAULT_MAX,
    );
    assert.deepEqual(out.messages, [
      { role: 'user', content: [{ type: 'text', text: 'one' }, { type: 'text', text: 'two' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'three' }, { type: 'text', text: 'four' }] },
    ]);
  });

  it('puts a minimal user turn before a conversation that opens with the assistant', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'system', content: 'sys' },
        { role: 'assistant', content: 'Welcome! Ask me anything.' },
        { role: 'user', content: 'What is 2+2?' },
      ]),
      DEFAULT_MAX,
    );
    assert.deepEqual(out.messages, [
      { role: 'user', content: [{ type: 'text', text: OPENING_USER_TEXT }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Welcome! Ask me anything.' }] },
      { role: 'user', content: [{ type: 'text', text: 'What is 2+2?' }] },
    ]);
    assert.ok(OPENING_USER_TEXT.length > 0);
  });

  it('translates a full tool-use round trip into tool_use blocks and one merged tool_result turn', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'system', content: 'You can call tools.' },
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '18C and sunny' },
        { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '22C' }] },
        { role: 'user', content: 'Which is warmer?' },
      ]),
      DEFAULT_MAX,
    );
    assert.equal(out.system, 'You can call tools.');
    assert.deepEqual(out.messages, [
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Rome?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_weather', input: { city: 'Rome' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '18C and sunny' },
          { type: 'tool_result', tool_use_id: 'call_2', content: '22C' },
          { type: 'text', text: 'Which is warmer?' },
        ],
      },
    ]);
  });

  it('keeps assistant text before its tool_use blocks', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'user', content: 'Weather?' },
        {
          role: 'assistant',
          content: 'Let me check.',
          tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'w', arguments: '{}' } }],
        },
      ]),
      DEFAULT_MAX,
    );
    assert.deepEqual(out.messages[1].content, [
      { type: 'text', text: 'Let me check.' },
      { type: 'tool_use', id: 'call_9', name: 'w', input: {} },
    ]);
  });

  it('sends {} as the input of a tool call whose arguments are invalid JSON or not an object', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'user', content: 'go' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'a', type: 'function', function: { name: 'f', arguments: '{"city": "Par' } },
            { id: 'b', type: 'function', function: { name: 'f', arguments: '[1,2]' } },
            { id: 'c', type: 'function', function: { name: 'f', arguments: '' } },
          ],
        },
      ]),
      DEFAULT_MAX,
    );
    const inputs = out.messages[1].content.map((block) => (block.type === 'tool_use' ? block.input : undefined));
    assert.deepEqual(inputs, [{}, {}, {}]);
  });

  it('maps tool ids Anthropic would reject onto its id alphabet, alike on both ends', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'user', content: 'go' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'fn.1:x', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'fn.1:x', content: 'ok' },
      ]),
      DEFAULT_MAX,
    );
    const use = out.messages[1].content[0];
    const result = out.messages[2].content[0];
    assert.equal(use.type === 'tool_use' && use.id, 'fn_1_x');
    assert.equal(result.type === 'tool_result' && result.tool_use_id, 'fn_1_x');
  });

  it('puts tool results first when a user message precedes them in the same turn', () => {
    const out = toAnthropicRequest(
      request([
        { role: 'user', content: 'go' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'user', content: 'by the way' },
        { role: 'tool', tool_call_id: 'c1', content: '' },
      ]),
      DEFAULT_MAX,
    );
    assert.deepEqual(out.messages[2], {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 'c1' },
        { type: 'text', text: 'by the way' },
      ],
    });
  });

  it('maps tools with their schema, defaulting a missing schema to an empty object schema', () => {
    const out = toAnthropicRequest(
      request([{ role: 'user', content: 'hi' }], {
        tools: [
          {
            type: 'function',
            function: {
              name: 'get_weather',
              description: 'Current weather',
              parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
              strict: true,
            },
          },
          { type: 'function', function: { name: 'ping' } },
        ],
      }),
      DEFAULT_MAX,
    );
    assert.deepEqual(out.tools, [
      {
        name: 'get_weather',
        description: 'Current weather',
        input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
      },
      { name: 'ping', input_schema: { type: 'object', properties: {} } },
    ]);
    assert.equal('tool_choice' in out, false);
  });

  it('maps every tool_choice form', () => {
    const tools: ChatRequest['tools'] = [{ type: 'function', function: { name: 'f' } }];
    const choiceFor = (tool_choice: ChatRequest['tool_choice']) =>
      toAnthropicRequest(request([{ role: 'user', content: 'x' }], { tools, tool_choice }), DEFAULT_MAX).tool_choice;
    assert.deepEqual(choiceFor('auto'), { type: 'auto' });
    assert.deepEqual(choiceFor('none'), { type: 'none' });
    assert.deepEqual(choiceFor('required'), { type: 'any' });
    assert.deepEqual(choiceFor({ type: 'function', function: { name: 'f' } }), { type: 'tool', name: 'f' });
  });

  it('turns parallel_tool_calls false into disable_parallel_tool_use, on auto when no choice is given', () => {
    const tools: ChatRequest['tools'] = [{ type: 'function', function: { name: 'f' } }];
    const base = [{ role: 'user' as const, content: 'x' }];
    assert.deepEqual(toAnthropicRequest(request(base, { tools, parallel_tool_calls: false }), DEFAULT_MAX).tool_choice, {
      type: 'auto',
      disable_parallel_tool_use: true,
    });
    assert.deepEqual(
      toAnthropicRequest(request(base, { tools, parallel_tool_calls: false, tool_choice: 'required' }), DEFAULT_MAX).tool_choice,
      { type: 'any', disable_parallel_tool_use: true },
    );
    assert.deepEqual(
      toAnthropicRequest(
        request(base, { tools, parallel_tool_calls: false, tool_choice: { type: 'function', function: { name: 'f' } } }),
        DEFAULT_MAX,
      ).tool_choice,
      { type: 'tool', name: 'f', disable_parallel_tool_use: true },
    );
    assert.deepEqual(
      toAnthropicRequest(request(base, { tools, parallel_tool_calls: false, tool_choice: 'none' }), DEFAULT_MAX).tool_choice,
      { type: 'none' },
    );
    assert.equal('tool_choice' in toAnthropicRequest(request(base, { tools, parallel_tool_calls: true }), DEFAULT_MAX), false);
  });

  it('sends neither tools nor tool_choice when the request has no tools', () => {
    const out = toAnthropicRequest(request([{ role: 'user', content: 'x' }], { tool_choice: 'auto', parallel_tool_calls: false }), DEFAULT_MAX);
    assert.equal('tools' in out, false);
    assert.equal('tool_choice' in out, false);
  });

  it('takes max_completion_tokens over max_tokens, and the account default when neither is sent', () => {
    const base = [{ role: 'user' as const, content: 'x' }];
    assert.equal(toAnthropicRequest(request(base, { max_tokens: 100, max_completion_tokens: 200 }), DEFAULT_MAX).max_tokens, 200);
    assert.equal(toAnthropicRequest(request(base, { max_tokens: 100 }), DEFAULT_MAX).max_tokens, 100);
    assert.equal(toAnthropicRequest(request(base, { max_tokens: 100, max_completion_tokens: null }), DEFAULT_MAX).max_tokens, 100);
    assert.equal(toAnthropicRequest(request(base), 777).max_tokens, 777);
    assert.equal(toAnthropicRequest(request(base, { max_tokens: null }), 777).max_tokens, 777);
  });

  it('passes temperature, top_p and stream, and turns stop into stop_sequences', () => {
    const base = [{ role: 'user' as const, content: 'x' }];
    const out = toAnthropicRequest(request(base, { temperature: 0.2, top_p: 0.9, stream: true, stop: 'END' }), DEFAULT_MAX);
    assert.equal(out.temperature, 0.2);
    assert.equal(out.top_p, 0.9);
    assert.equal(out.stream, true);
    assert.deepEqual(out.stop_sequences, ['END']);
    assert.deepEqual(toAnthropicRequest(request(base, { stop: ['a', 'b'] }), DEFAULT_MAX).stop_sequences, ['a', 'b']);
    const bare = toAnthropicRequest(request(base, { temperature: null, top_p: null, stop: null }), DEFAULT_MAX);
    for (const field of ['temperature', 'top_p', 'stop_sequences', 'stream']) assert.equal(field in bare, false, field);
  });

  it('passes user as metadata.user_id', () => {
    const out = toAnthropicRequest(request([{ role: 'user', content: 'x' }], { user: 'user-42' }), DEFAULT_MAX);
    assert.deepEqual(out.metadata, { user_id: 'user-42' });
  });

  it('forwards no field Anthropic does not know', () => {
    const out = toAnthropicRequest(
      request([{ role: 'user', content: 'x', name: 'alice' }], {
        stream: true,
        stream_options: { include_usage: true },
        n: 1,
        seed: 7,
        logprobs: true,
        presence_penalty: 0.5,
        frequency_penalty: 0.5,
        response_format: { type: 'json_object' },
        tools: [{ type: 'function', function: { name: 'f', strict: true } }],
        tool_choice: 'auto',
        parallel_tool_calls: true,
        max_completion_tokens: 10,
        user: 'u',
        stop: 'x',
        temperature: 1,
        top_p: 1,
        something_new: { nested: true },
      }),
      DEFAULT_MAX,
    );
    const allowed = ['model', 'messages', 'max_tokens', 'system', 'temperature', 'top_p', 'stop_sequences', 'stream', 'tools', 'tool_choice', 'metadata'];
    for (const key of Object.keys(out)) assert.ok(allowed.includes(key), `unexpected field ${key}`);
    assert.deepEqual(out.messages, [{ role: 'user', content: [{ type: 'text', text: 'x' }] }]);
    assert.deepEqual(out.tools, [{ name: 'f', input_schema: { type: 'object', properties: {} } }]);
    assert.equal(out.model, 'claude-test');
  });
});

describe('toAnthropicRequest temperature', () => {
  it('clamps an OpenAI temperature above 1 to Anthropic’s maximum', () => {
    const request = toAnthropicRequest({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 1.5 }, 100);
    assert.equal(request.temperature, 1);
    const low = toAnthropicRequest({ model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 0.3 }, 100);
    assert.equal(low.temperature, 0.3);
  });
});
