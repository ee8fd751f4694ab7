import { randomUUID } from 'node:crypto';
import type { ChatCompletionChunk, ChunkToolCallDelta, FinishReason, Usage } from '../openai-types';
import { UpstreamError } from '../upstream-error';
import { nowSeconds, toFinishReason, toUsage } from './anthropic-response';
import type {
  AnthropicStreamEvent,
  AnthropicUsage,
  ContentBlockDeltaData,
  ContentBlockStartData,
  MessageDeltaData,
  MessageStartData,
  StreamErrorData,
} from './anthropic-types';

type ChunkDelta = ChatCompletionChunk['choices'][number]['delta'];

const MAX_MESSAGE_LENGTH = 1000;

/**
 * Turns the events of one streamed Anthropic message into OpenAI chat.completion.chunk objects,
 * one event at a time. Holds the per-stream state the mapping needs: the message id, which
 * content block is which tool call, the usage so far and the finish reason.
 *
 * An `error` event is thrown as UpstreamError('stream'), because it arrives after the first
 * chunk by definition and the relay must end the stream with the SSE error event.
 */
export class AnthropicStreamTranslator {
  private id = `chatcmpl-${randomUUID().replaceAll('-', '')}`;
  private started = false;
  private usageSoFar: AnthropicUsage = {};
  private finalUsage = false;
  private finish: FinishReason = null;
  /** Anthropic's content-block index → the OpenAI tool_calls index (0 for the message's first tool call). */
  private readonly toolIndexes = new Map<number, number>();

  constructor(
    private readonly model: string,
    private readonly created = nowSeconds(),
  ) {}

  /** Usage so far in OpenAI terms; undefined until message_start has arrived. */
  get usage(): Usage | undefined {
    return this.started ? toUsage(this.usageSoFar) : undefined;
  }

  /** True once message_delta has brought the final output count. */
  get usageIsFinal(): boolean {
    return this.finalUsage;
  }

  /** The mapped finish reason; null until message_delta has arrived. */
  get finishReason(): FinishReason {
    return this.finish;
  }

  /** The chunks one event translates to (often none). Throws UpstreamError('stream') on an `error` event. */
  translate(event: AnthropicStreamEvent): ChatCompletionChunk[] {
    const data = (event.data ?? {}) as { type?: unknown };
    const type = typeof data.type === 'string' ? data.type : event.event;
    switch (type) {
      case 'message_start':
        return this.onMessageStart(data as MessageStartData);
      case 'content_block_start':
        return this.onBlockStart(data as ContentBlockStartData);
      case 'content_block_delta':
        return this.onBlockDelta(data as ContentBlockDeltaData);
      case 'message_delta':
        return this.onMessageDelta(data as MessageDeltaData);
      case 'message_stop':
        return [{ ...this.envelope(), choices: [], usage: toUsage(this.usageSoFar) }];
      case 'error':
        throw streamError(data as StreamErrorData);
      default:
        // ping, content_block_stop and event kinds added after this was written carry nothing to relay.
        return [];
    }
  }

  private onMessageStart(data: MessageStartData): ChatCompletionChunk[] {
    const message = data.message;
    if (message && typeof message.id === 'string' && message.id) this.id = `chatcmpl-${message.id}`;
    if (message?.usage) this.usageSoFar = { ...message.usage };
    this.started = true;
    return [this.chunk({ role: 'assistant', content: '' })];
  }

  private onBlockStart(data: ContentBlockStartData): ChatCompletionChunk[] {
    const block = data.content_block;
    if (block?.type === 'tool_use') {
      const index = this.toolIndexes.size;
      this.toolIndexes.set(data.index, index);
      const call: ChunkToolCallDelta = {
        index,
        id: String(block.id),
        type: 'function',
        function: { name: String(block.name), arguments: '' },
      };
      return [this.chunk({ tool_calls: [call] })];
    }
    if (block?.type === 'text' && typeof block.text === 'string' && block.text) {
      return [this.chunk({ content: block.text })];
    }
    return [];
  }

  private onBlockDelta(data: ContentBlockDeltaData): ChatCompletionChunk[] {
    const delta = data.delta;
    if (delta?.type === 'text_delta' && typeof delta.text === 'string' && delta.text) {
      return [this.chunk({ content: delta.text })];
    }
    if (delta?.type === 'input_json_delta' && typeof delta.partial_json === 'string' && delta.partial_json) {
      const index = this.toolIndexes.get(data.index);
      // Deltas of blocks that are not client tool calls (server tools) have no OpenAI counterpart.
      if (index === undefined) return [];
      return [this.chunk({ tool_calls: [{ index, function: { arguments: delta.partial_json } }] })];
    }
    return [];
  }

  private onMessageDelta(data: MessageDeltaData): ChatCompletionChunk[] {
    // message_delta counts are cumulative, so they replace what message_start said.
    if (data.usage) {
      for (const [key, value] of Object.entries(data.usage)) if (value != null) this.usageSoFar[key] = value;
      this.finalUsage = true;
    }
    this.finish = toFinishReason(data.delta?.stop_reason);
    return [this.chunk({}, this.finish)];
  }

  private envelope(): Pick<ChatCompletionChunk, 'id' | 'object' | 'created' | 'model'> {
    return { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model };
  }

  private chunk(delta: ChunkDelta, finishReason: FinishReason = null): ChatCompletionChunk {
    return { ...this.envelope(), choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }] };
  }
}

function streamError(data: StreamErrorData): UpstreamError {
  const type = typeof data.error?.type === 'string' && /^[a-z_]{1,64}$/.test(data.error.type) ? data.error.type : 'error';
  const detail = typeof data.error?.message === 'string' ? `: ${data.error.message.slice(0, MAX_MESSAGE_LENGTH)}` : '';
  return new UpstreamError('stream', `Anthropic stream failed (${type})${detail}`);
}
