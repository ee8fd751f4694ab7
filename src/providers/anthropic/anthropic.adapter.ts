import type { AccountConfig } from '../../config/app-config';
import type { ChatCompletion } from '../openai-types';
import type { ProviderAdapter, ProviderCall, UpstreamStream } from '../provider';
import { EventDecoder, parseEventData, SseChunkReader } from '../sse-chunk-reader';
import { startStream } from '../stream-start';
import { UpstreamHttp, UpstreamResponse, toUpstreamError } from '../upstream-http';
import { toAnthropicRequest } from './anthropic-request';
import { toChatCompletion, toUpstreamError as anthropicError } from './anthropic-response';
import { AnthropicStreamTranslator } from './anthropic-stream';
import type { AnthropicResponse } from './anthropic-types';

export const ANTHROPIC_DEFAULT_BASE_URL = 'https://api.anthropic.com';
const ANTHROPIC_VERSION = '2023-06-01';

/** An Anthropic Messages API account behind the OpenAI interface (DESIGN §3.6). */
export class AnthropicAdapter implements ProviderAdapter {
  private readonly http: UpstreamHttp;
  private readonly headers: Record<string, string>;

  constructor(private readonly account: AccountConfig) {
    this.http = new UpstreamHttp(account.base_url ?? ANTHROPIC_DEFAULT_BASE_URL, account.timeouts, account.max_concurrency + 2);
    this.headers = { 'x-api-key': account.api_key?.reveal() ?? '', 'anthropic-version': ANTHROPIC_VERSION };
  }

  async complete(call: ProviderCall): Promise<ChatCompletion> {
    const response = await this.post(call.body, call.signal);
    try {
      return toChatCompletion((await response.body.json()) as AnthropicResponse, call.body.model);
    } catch (err) {
      // The upstream already answered (and maybe billed): a broken body is not retried elsewhere.
      throw toUpstreamError(err, true);
    }
  }

  async stream(call: ProviderCall): Promise<UpstreamStream> {
    const response = await this.post({ ...call.body, stream: true }, call.signal);
    const decode = eventDecoder(new AnthropicStreamTranslator(call.body.model));
    return startStream(new SseChunkReader(response.body, decode, 'The upstream ended the stream before message_stop.'));
  }

  close(): Promise<void> {
    return this.http.close();
  }

  private post(body: ProviderCall['body'], signal: AbortSignal): Promise<UpstreamResponse> {
    const request = toAnthropicRequest(body, this.account.max_tokens_default);
    return this.http.post('/v1/messages', this.headers, JSON.stringify(request), signal, (status, text, retryAfterMs) =>
      anthropicError(status, text, retryAfterMs),
    );
  }
}

/** Anthropic events through the translator into OpenAI chunks; `message_stop` ends the stream. */
function eventDecoder(translator: AnthropicStreamTranslator): EventDecoder {
  return (event, emit) => {
    const data = parseEventData(event.data);
    const type = event.event ?? (data as { type?: string }).type ?? '';
    for (const chunk of translator.translate({ event: type, data })) emit(chunk);
    return type === 'message_stop';
  };
}
