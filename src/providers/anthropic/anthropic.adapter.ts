import type { AccountConfig } from '../../config/app-config';
import type { ChatCompletion, ChatCompletionChunk } from '../openai-types';
import type { ProviderAdapter, ProviderCall, UpstreamStream } from '../provider';
import { SseParser } from '../sse-parser';
import { startStream } from '../stream-start';
import { UpstreamError } from '../upstream-error';
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
    const chunks = readChunks(response, new AnthropicStreamTranslator(call.body.model));
    return startStream(chunks);
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

async function* readChunks(response: UpstreamResponse, translator: AnthropicStreamTranslator): AsyncGenerator<ChatCompletionChunk> {
  const parser = new SseParser();
  try {
    for await (const bytes of response.body) {
      for (const event of parser.push(bytes as Buffer)) {
        let data: unknown;
        try {
          data = JSON.parse(event.data);
        } catch {
          throw new UpstreamError('stream', 'The upstream sent an unreadable event.');
        }
        const type = event.event ?? (data as { type?: string }).type ?? '';
        yield* translator.translate({ event: type, data });
        if (type === 'message_stop') return;
      }
    }
    throw new UpstreamError('stream', 'The upstream ended the stream before message_stop.');
  } catch (err) {
    throw toUpstreamError(err, true);
  } finally {
    if (!response.body.destroyed) response.body.destroy();
  }
}
