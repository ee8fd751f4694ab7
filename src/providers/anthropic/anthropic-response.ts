import type { ChatCompletion, FinishReason, ToolCall, Usage } from '../openai-types';
import { UpstreamError, failureForStatus } from '../upstream-error';
import type { AnthropicResponse, AnthropicUsage } from './anthropic-types';

/** Longest upstream message relayed to a client, so a verbose upstream cannot bloat errors. */
const MAX_MESSAGE_LENGTH = 1000;

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** Anthropic's stop_reason in OpenAI terms; refusals, pauses and unknown reasons read as `stop`. */
export function toFinishReason(stopReason: string | null | undefined): FinishReason {
  switch (stopReason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    default:
      return 'stop';
  }
}

/** Anthropic counts cached prompt tokens apart from input_tokens; OpenAI's prompt_tokens include them. */
export function toUsage(usage: AnthropicUsage | undefined): Usage {
  const prompt =
    count(usage?.input_tokens) + count(usage?.cache_creation_input_tokens) + count(usage?.cache_read_input_tokens);
  const completion = count(usage?.output_tokens);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function count(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : 0;
}

/** Translates a non-streamed Anthropic message into a chat.completion answering for `model`. */
export function toChatCompletion(response: AnthropicResponse, model: string, created = nowSeconds()): ChatCompletion {
  let text = '';
  const toolCalls: ToolCall[] = [];
  for (const block of response.content ?? []) {
    if (block.type === 'text' && typeof block.text === 'string') {
      text += block.text;
    } else if (block.type === 'tool_use') {
      toolCalls.push({
        id: String(block.id),
        type: 'function',
        function: { name: String(block.name), arguments: JSON.stringify(block.input ?? {}) },
      });
    }
  }
  const message: ChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    content: text === '' && toolCalls.length > 0 ? null : text,
  };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return {
    id: `chatcmpl-${response.id}`,
    object: 'chat.completion',
    created,
    model,
    choices: [{ index: 0, message, finish_reason: toFinishReason(response.stop_reason), logprobs: null }],
    usage: toUsage(response.usage),
  };
}

/**
 * Turns an Anthropic error answer into the pool's terms (529 `overloaded_error` is `server`, so
 * retryable). Only client errors keep Anthropic's message, since the client must see what to fix;
 * the rest say status and error type only. `body` is the parsed JSON, or the raw text when it
 * was not JSON. No header ever goes into a message.
 */
export function toUpstreamError(status: number, body: unknown, retryAfterMs?: number): UpstreamError {
  const failure = failureForStatus(status);
  const error = errorOf(body);
  const type = error && /^[a-z_]{1,64}$/.test(error.type) ? error.type : undefined;
  let message: string;
  if (failure === 'client' && error?.message) {
    message = error.message.slice(0, MAX_MESSAGE_LENGTH);
  } else {
    message = `Anthropic answered ${status}${type ? ` (${type})` : ''}.`;
  }
  return new UpstreamError(failure, message, status, retryAfterMs);
}

function errorOf(body: unknown): { type: string; message: string } | undefined {
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch {
      return undefined;
    }
  }
  if (!body || typeof body !== 'object') return undefined;
  const error = (body as { error?: unknown }).error;
  if (!error || typeof error !== 'object') return undefined;
  const { type, message } = error as { type?: unknown; message?: unknown };
  return { type: typeof type === 'string' ? type : '', message: typeof message === 'string' ? message : '' };
}
