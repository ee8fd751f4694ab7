import type { AccountConfig } from '../../config/app-config';
import type { ChatCompletion, ChatCompletionChunk } from '../openai-types';
import type { ProviderAdapter, ProviderCall, UpstreamStream } from '../provider';
import { parseEventData, SseChunkReader } from '../sse-chunk-reader';
import type { SseEvent } from '../sse-parser';
import { startStream } from '../stream-start';
import { UpstreamError, failureForStatus } from '../upstream-error';
import { UpstreamHttp, UpstreamResponse, toUpstreamError, upstreamMessage } from '../upstream-http';

/**
 * Any OpenAI-compatible upstream: `base_url` includes the version path and the adapter appends
 * `/chat/completions`. The client's body is forwarded as it came, `model` already rewritten;
 * streams always ask for usage so the gateway can meter them.
 */
export class OpenAIAdapter implements ProviderAdapter {
  private readonly http: UpstreamHttp;
  private readonly headers: Record<string, string>;

  constructor(account: AccountConfig) {
    this.http = new UpstreamHttp(account.base_url!, account.timeouts, account.max_concurrency + 2);
    this.headers = { authorization: `Bearer ${account.api_key?.reveal() ?? ''}` };
  }

  async complete(call: ProviderCall): Promise<ChatCompletion> {
    const response = await this.post(call.body, call.signal);
    try {
      return (await response.body.json()) as ChatCompletion;
    } catch (err) {
      // The upstream already answered (and maybe billed): a broken body is not retried elsewhere.
      throw toUpstreamError(err, true);
    }
  }

  async stream(call: ProviderCall): Promise<UpstreamStream> {
    const body = { ...call.body, stream: true, stream_options: { ...call.body.stream_options, include_usage: true } };
    const response = await this.post(body, call.signal);
    return startStream(new SseChunkReader(response.body, decodeEvent, 'The upstream ended the stream before [DONE].'));
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private post(body: unknown, signal: AbortSignal): Promise<UpstreamResponse> {
    return this.http.post('/chat/completions', this.headers, JSON.stringify(body), signal, openAIError);
  }
}

/** Only the client's own mistakes are passed on verbatim: an auth error may quote the key. */
function openAIError(status: number, text: string, retryAfterMs: number | undefined): UpstreamError {
  const failure = failureForStatus(status);
  const message = failure === 'client' ? upstreamMessage(status, text, 'The upstream refused the request') : `The upstream answered HTTP ${status}.`;
  return new UpstreamError(failure, message, status, retryAfterMs);
}

/** One OpenAI stream event: a chunk, or `[DONE]` (the end). */
function decodeEvent(event: SseEvent, emit: (chunk: ChatCompletionChunk) => void): boolean {
  if (event.data === '[DONE]') return true;
  const parsed = parseEventData(event.data) as ChatCompletionChunk & { error?: { message?: string } };
  if (parsed.error) throw new UpstreamError('stream', `The upstream reported an error: ${String(parsed.error.message ?? 'unknown').slice(0, 200)}`);
  emit(parsed);
  return false;
}
