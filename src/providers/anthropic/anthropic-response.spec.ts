import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UpstreamError } from '../upstream-error';
import { toChatCompletion, toFinishReason, toUpstreamError, toUsage } from './anthropic-response';
import type { AnthropicResponse } from './anthropic-types';

function message(overrides: Partial<AnthropicResponse> = {}): AnthropicResponse {
  return {
    id: 'msg_01ABC',
    type: 'message',
    role: 'assistant',
    model: 'claude-upstream-name',
    content: [{ type: 'text', text: 'Hello!' }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 10, output_tokens: 5 },
    ...overrides,
  };
}

describe('Anthropic response → chat.completion', () => {
  it('builds a chat.completion with the caller model, a chatcmpl- id and usage', () => {
    const out = toChatCompletion(message(), 'my-alias', 1700000000);
    assert.deepEqual(out, {
      id: 'chatcmpl-msg_01ABC',
      object: 'chat.completion',
      created: 1700000000,
      model: 'my-alias',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello!' }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    });
  });

  it('stamps created with the current time in seconds by default', () => {
    const before = Math.floor(Date.now() / 1000);
    const out = toChatCompletion(message(), 'm');
    assert.ok(out.created >= before && out.created <= before + 60);
  });

  it('concatenates text blocks and ignores blocks it does not translate', () => {
    const out = toChatCompletion(
      message({
        content: [
          { type: 'thinking', thinking: 'hmm', signature: 'sig' },
          { type: 'text', text: 'Hello, ' },
          { type: 'text', text: 'world.' },
        ],
      }),
      'm',
    );
    assert.equal(out.choices[0].message.content, 'Hello, world.');
    assert.equal('tool_calls' in out.choices[0].message, false);
  });

  it('turns tool_use blocks into tool_calls with JSON arguments and content null when there is no text', () => {
    const out = toChatCompletion(
      message({
        content: [
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'toolu_2', name: 'get_time', input: {} },
        ],
        stop_reason: 'tool_use',
      }),
      'm',
    );
    const choice = out.choices[0];
    assert.equal(choice.message.content, null);
    assert.equal(choice.finish_reason, 'tool_calls');
    assert.deepEqual(choice.message.tool_calls, [
      { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      { id: 'toolu_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
    ]);
  });

  it('keeps text beside tool calls', () => {
    const out = toChatCompletion(
      message({
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'toolu_1', name: 'f', input: { a: 1 } },
        ],
        stop_reason: 'tool_use',
      }),
      'm',
    );
    assert.equal(out.choices[0].message.content, 'Checking.');
    assert.equal(out.choices[0].message.tool_calls?.length, 1);
  });

  it('answers an empty string, not null, when there is neither text nor a tool call', () => {
    const out = toChatCompletion(message({ content: [], stop_reason: 'max_tokens' }), 'm');
    assert.equal(out.choices[0].message.content, '');
    assert.equal(out.choices[0].finish_reason, 'length');
  });

  it('maps every stop_reason to a finish_reason', () => {
    assert.equal(toFinishReason('end_turn'), 'stop');
    assert.equal(toFinishReason('stop_sequence'), 'stop');
    assert.equal(toFinishReason('max_tokens'), 'length');
    assert.equal(toFinishReason('tool_use'), 'tool_calls');
    assert.equal(toFinishReason('model_context_window_exceeded'), 'length');
    assert.equal(toFinishReason('refusal'), 'stop');
    assert.equal(toFinishReason('pause_turn'), 'stop');
    assert.equal(toFinishReason('something_new'), 'stop');
    assert.equal(toFinishReason(null), 'stop');
  });

  it('counts cache creation and cache reads into prompt_tokens', () => {
    assert.deepEqual(
      toUsage({ input_tokens: 10, cache_creation_input_tokens: 100, cache_read_input_tokens: 1000, output_tokens: 7 }),
      { prompt_tokens: 1110, completion_tokens: 7, total_tokens: 1117 },
    );
    assert.deepEqual(toUsage({ input_tokens: 3, cache_creation_input_tokens: null, output_tokens: 2 }), {
      prompt_tokens: 3,
      completion_tokens: 2,
      total_tokens: 5,
    });
    assert.deepEqual(toUsage(undefined), { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 });
  });
});

describe('Anthropic error response → UpstreamError', () => {
  const body = (type: string, text: string) => ({ type: 'error', error: { type, message: text } });

  it('treats 529 overloaded_error as a retryable server failure', () => {
    const error = toUpstreamError(529, body('overloaded_error', 'Overloaded'));
    assert.ok(error instanceof UpstreamError);
    assert.equal(error.failure, 'server');
    assert.equal(error.status, 529);
    assert.equal(error.retryable, true);
    assert.match(error.message, /529/);
    assert.match(error.message, /overloaded_error/);
  });

  it('keeps the upstream message for client errors', () => {
    const error = toUpstreamError(400, body('invalid_request_error', 'messages: text content blocks must be non-empty'));
    assert.equal(error.failure, 'client');
    assert.equal(error.status, 400);
    assert.equal(error.retryable, false);
    assert.equal(error.message, 'messages: text content blocks must be non-empty');
    assert.equal(toUpstreamError(404, body('not_found_error', 'model: claude-x')).message, 'model: claude-x');
    assert.equal(toUpstreamError(413, body('request_too_large', 'Request exceeds the maximum size')).failure, 'client');
  });

  it('reads a body still in text form', () => {
    const error = toUpstreamError(422, JSON.stringify(body('invalid_request_error', 'bad field')));
    assert.equal(error.message, 'bad field');
  });

  it('does not relay the upstream message of auth failures, and marks them auth', () => {
    const error = toUpstreamError(401, body('authentication_error', 'invalid x-api-key sk-ant-secret'));
    assert.equal(error.failure, 'auth');
    assert.equal(error.message.includes('sk-ant-secret'), false);
    assert.match(error.message, /401/);
    assert.equal(toUpstreamError(403, body('permission_error', 'no')).failure, 'auth');
  });

  it('maps 429 to rate_limited with its Retry-After, and 500 to server', () => {
    const limited = toUpstreamError(429, body('rate_limit_error', 'slow down'), 3000);
    assert.equal(limited.failure, 'rate_limited');
    assert.equal(limited.retryAfterMs, 3000);
    assert.equal(limited.retryable, true);
    assert.equal(toUpstreamError(500, body('api_error', 'boom')).failure, 'server');
  });

  it('copes with a body that is not an Anthropic error', () => {
    const error = toUpstreamError(502, '<html>Bad gateway</html>');
    assert.equal(error.failure, 'server');
    assert.equal(error.message, 'Anthropic answered 502.');
    assert.equal(toUpstreamError(400, null).message, 'Anthropic answered 400.');
  });
});
