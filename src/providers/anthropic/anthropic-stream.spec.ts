import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ChatCompletionChunk } from '../openai-types';
import { UpstreamError } from '../upstream-error';
import { AnthropicStreamTranslator } from './anthropic-stream';
import type { AnthropicStreamEvent } from './anthropic-types';

function ev(data: { type: string; [key: string]: unknown }): AnthropicStreamEvent {
  return { event: data.type, data };
}

const messageStart = ev({
  type: 'message_start',
  message: {
    id: 'msg_42',
    type: 'message',
    role: 'assistant',
    model: 'claude-upstream',
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: 25, cache_read_input_tokens: 5, output_tokens: 1 },
  },
});

function run(translator: AnthropicStreamTranslator, events: AnthropicStreamEvent[]): ChatCompletionChunk[] {
  return events.flatMap((event) => translator.translate(event));
}

describe('Anthropic stream → chat.completion.chunk', () => {
  it('streams a text answer: role chunk, content chunks, finish chunk, usage chunk', () => {
    const translator = new AnthropicStreamTranslator('my-alias', 1700000000);
    const chunks = run(translator, [
      messageStart,
      ev({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      ev({ type: 'ping' }),
      ev({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } }),
      ev({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ', world' } }),
      ev({ type: 'content_block_stop', index: 0 }),
      ev({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 12 } }),
      ev({ type: 'message_stop' }),
    ]);

    for (const chunk of chunks) {
      assert.equal(chunk.id, 'chatcmpl-msg_42');
      assert.equal(chunk.object, 'chat.completion.chunk');
      assert.equal(chunk.created, 1700000000);
      assert.equal(chunk.model, 'my-alias');
    }
    assert.deepEqual(
      chunks.map((chunk) => chunk.choices.map((choice) => [choice.delta, choice.finish_reason])),
      [
        [[{ role: 'assistant', content: '' }, null]],
        [[{ content: 'Hello' }, null]],
        [[{ content: ', world' }, null]],
        [[{}, 'stop']],
        [],
      ],
    );
    assert.deepEqual(chunks[4].usage, { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 });
    assert.deepEqual(translator.usage, { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 });
    assert.equal(translator.usageIsFinal, true);
    assert.equal(translator.finishReason, 'stop');
  });

  it('streams two tool calls of one message with indexes 0 and 1', () => {
    const translator = new AnthropicStreamTranslator('m', 1);
    const chunks = run(translator, [
      messageStart,
      ev({ type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
      ev({ type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Checking both.' } }),
      ev({ type: 'content_block_stop', index: 0 }),
      ev({ type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_A', name: 'get_weather', input: {} } }),
      ev({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } }),
      ev({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city":' } }),
      ev({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: ' "Paris"}' } }),
      ev({ type: 'content_block_stop', index: 1 }),
      ev({ type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_B', name: 'get_weather', input: {} } }),
      ev({ type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"city": "Rome"}' } }),
      ev({ type: 'content_block_stop', index: 2 }),
      ev({ type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 80 } }),
      ev({ type: 'message_stop' }),
    ]);

    const deltas = chunks.filter((chunk) => chunk.choices.length > 0).map((chunk) => chunk.choices[0].delta);
    assert.deepEqual(deltas, [
      { role: 'assistant', content: '' },
      { content: 'Checking both.' },
      { tool_calls: [{ index: 0, id: 'toolu_A', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] },
      { tool_calls: [{ index: 0, function: { arguments: ' "Paris"}' } }] },
      { tool_calls: [{ index: 1, id: 'toolu_B', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
      { tool_calls: [{ index: 1, function: { arguments: '{"city": "Rome"}' } }] },
      {},
    ]);
    const finish = chunks.find((chunk) => chunk.choices[0]?.finish_reason);
    assert.equal(finish?.choices[0].finish_reason, 'tool_calls');
    assert.equal(translator.finishReason, 'tool_calls');

    // Reassembling the way an OpenAI client does yields both calls intact.
    const calls: Array<{ id?: string; name?: string; arguments: string }> = [];
    for (const delta of deltas) {
      for (const call of delta.tool_calls ?? []) {
        calls[call.index] ??= { arguments: '' };
        if (call.id) calls[call.index].id = call.id;
        if (call.function?.name) calls[call.index].name = call.function.name;
        calls[call.index].arguments += call.function?.arguments ?? '';
      }
    }
    assert.deepEqual(calls, [
      { id: 'toolu_A', name: 'get_weather', arguments: '{"city": "Paris"}' },
      { id: 'toolu_B', name: 'get_weather', arguments: '{"city": "Rome"}' },
    ]);
  });

  it('maps max_tokens to finish_reason length', () => {
    const translator = new AnthropicStreamTranslator('m');
    const [chunk] = run(translator, [
      messageStart,
      ev({ type: 'message_delta', delta: { stop_reason: 'max_tokens' }, usage: { output_tokens: 3 } }),
    ]).slice(1);
    assert.equal(chunk.choices[0].finish_reason, 'length');
    assert.equal(translator.finishReason, 'length');
  });

  it('produces nothing for ping, content_block_stop, thinking deltas and unknown events', () => {
    const translator = new AnthropicStreamTranslator('m');
    translator.translate(messageStart);
    assert.deepEqual(translator.translate(ev({ type: 'ping' })), []);
    assert.deepEqual(translator.translate(ev({ type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } })), []);
    assert.deepEqual(translator.translate(ev({ type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hmm' } })), []);
    assert.deepEqual(translator.translate(ev({ type: 'content_block_stop', index: 0 })), []);
    assert.deepEqual(translator.translate(ev({ type: 'brand_new_event' })), []);
  });

  it('reports usage so far before the stream has finished', () => {
    const translator = new AnthropicStreamTranslator('m');
    assert.equal(translator.usage, undefined);
    assert.equal(translator.finishReason, null);
    translator.translate(messageStart);
    assert.deepEqual(translator.usage, { prompt_tokens: 30, completion_tokens: 1, total_tokens: 31 });
    assert.equal(translator.usageIsFinal, false);
  });

  it('always ends with a usage chunk with empty choices on message_stop', () => {
    const translator = new AnthropicStreamTranslator('m', 5);
    const chunks = run(translator, [
      messageStart,
      ev({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 2 } }),
      ev({ type: 'message_stop' }),
    ]);
    const last = chunks[chunks.length - 1];
    assert.deepEqual(last, {
      id: 'chatcmpl-msg_42',
      object: 'chat.completion.chunk',
      created: 5,
      model: 'm',
      choices: [],
      usage: { prompt_tokens: 30, completion_tokens: 2, total_tokens: 32 },
    });
  });

  it('throws a stream UpstreamError on an error event', () => {
    const translator = new AnthropicStreamTranslator('m');
    translator.translate(messageStart);
    assert.throws(
      () => translator.translate({ event: 'error', data: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } } }),
      (error: unknown) =>
        error instanceof UpstreamError &&
        error.failure === 'stream' &&
        error.message.includes('overloaded_error') &&
        error.message.includes('Overloaded'),
    );
  });
});
