import type { UpstreamStream } from './provider';
import type { SseChunkReader } from './sse-chunk-reader';
import { UpstreamError } from './upstream-error';
import { toUpstreamError } from './upstream-http';

/**
 * Waits for a stream's first chunk before handing it over, so that everything up to it
 * (connect, status, an early error event) fails as a retryable error while the client has
 * received nothing yet; after it, failures are `stream` failures the relay reports in-band.
 */
export async function startStream(chunks: SseChunkReader): Promise<UpstreamStream> {
  try {
    await chunks.ready();
  } catch (err) {
    await chunks.return();
    throw err instanceof UpstreamError && err.failure === 'stream' ? new UpstreamError('server', err.message) : toUpstreamError(err, false);
  }
  return { chunks };
}
