import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from './openai-types';

/** One upstream call, already bound to an account. */
export interface ProviderCall {
  /** The client's body with `model` rewritten to the upstream model. */
  body: ChatRequest;
  /** Aborted when the client goes away or the gateway gives up; the adapter must stop at once. */
  signal: AbortSignal;
}

/**
 * A stream whose first chunk has already arrived, so everything before it (connect, status,
 * first-byte timeout) could still be retried on another account.
 */
export interface UpstreamStream {
  /** The chunks in order, the first one included; ends when the upstream ends the stream. */
  chunks: AsyncIterable<ChatCompletionChunk>;
}

/**
 * One adapter per upstream kind (`openai`, `anthropic`, `mock`). Requests and answers are in
 * OpenAI shape; failures are thrown as UpstreamError so the pool can decide on retry, cooldown
 * or ejection.
 */
export interface ProviderAdapter {
  complete(call: ProviderCall): Promise<ChatCompletion>;
  stream(call: ProviderCall): Promise<UpstreamStream>;
  /** Frees sockets and pools at shutdown. */
  close(): Promise<void>;
}
