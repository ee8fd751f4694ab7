import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { decode, encode } from 'gpt-tokenizer';
import type { AccountConfig } from '../../config/app-config';
import { countPromptTokens } from '../../usage/token-estimate';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, ToolCall, Usage } from '../openai-types';
import type { ProviderAdapter, ProviderCall, UpstreamStream } from '../provider';
import { UpstreamError } from '../upstream-error';

const REPLY = 'Hello from the Drawbridge mock upstream. This reply is deterministic, so demos and benchmarks can rely on it.';

/**
 * A deterministic local upstream for the demo config and benchmarks: a fixed reply (or a call to
 * the first tool when tools are given), `latency_ms` before the first byte, `tokens_per_second`
 * pacing for streams, and usage counted by the tokenizer.
 */
export class MockAdapter implements ProviderAdapter {
  private readonly replyTokens = encode(REPLY).map((token) => decode([token]));

  constructor(private readonly account: AccountConfig) {}

  async complete(call: ProviderCall): Promise<ChatCompletion> {
    await this.wait(this.account.latency_ms, call.signal);
    const toolCall = this.toolCall(call.body);
    const content = toolCall ? null : REPLY;
    return {
      id: `chatcmpl-${randomUUID()}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: call.body.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content, ...(toolCall ? { tool_calls: [toolCall] } : {}) },
          finish_reason: toolCall ? 'tool_calls' : 'stop',
          logprobs: null,
        },
      ],
      usage: this.usage(call.body, toolCall ? encode(toolCall.function.arguments).length + 5 : this.replyTokens.length),
    };
  }

  async stream(call: ProviderCall): Promise<UpstreamStream> {
    await this.wait(this.account.latency_ms, call.signal);
    return { chunks: this.chunks(call) };
  }

  async close(): Promise<void> {}

  private async *chunks(call: ProviderCall): AsyncGenerator<ChatCompletionChunk> {
    const id = `chatcmpl-${randomUUID()}`;
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: ChatCompletionChunk['choices'][0]['finish_reason'] = null): ChatCompletionChunk => ({
      id,
      object: 'chat.completion.chunk',
      created,
      model: call.body.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    });
    const gap = this.account.tokens_per_second > 0 ? 1000 / this.account.tokens_per_second : 0;
    yield chunk({ role: 'assistant', content: '' });
    const toolCall = this.toolCall(call.body);
    let completionTokens = 0;
    if (toolCall) {
      yield chunk({ tool_calls: [{ index: 0, id: toolCall.id, type: 'function', function: { name: toolCall.function.name, arguments: '' } }] });
      yield chunk({ tool_calls: [{ index: 0, function: { arguments: toolCall.function.arguments } }] });
      completionTokens = encode(toolCall.function.arguments).length + 5;
    } else {
      for (const token of this.replyTokens) {
        await this.wait(gap, call.signal);
        yield chunk({ content: token });
        completionTokens++;
      }
    }
    yield chunk({}, toolCall ? 'tool_calls' : 'stop');
    yield { id, object: 'chat.completion.chunk', created, model: call.body.model, choices: [], usage: this.usage(call.body, completionTokens) };
  }

  private toolCall(body: ChatRequest): ToolCall | undefined {
    const tool = body.tools?.[0];
    if (!tool || body.tool_choice === 'none' || body.messages.at(-1)?.role === 'tool') return undefined;
    return { id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`, type: 'function', function: { name: tool.function.name, arguments: '{}' } };
  }

  private usage(body: ChatRequest, completionTokens: number): Usage {
    const promptTokens = countPromptTokens(body.messages);
    return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  }

  private async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw new UpstreamError('stream', 'The request was cancelled.');
    if (ms <= 0) return;
    try {
      await sleep(ms, undefined, { signal });
    } catch {
      throw new UpstreamError('stream', 'The request was cancelled.');
    }
  }
}
