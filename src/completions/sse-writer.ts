import type { ServerResponse } from 'node:http';
import type { ErrorBody } from '../common/gateway-error';

/**
 * Writes Server-Sent Events straight to the socket, respecting backpressure: when the socket's
 * buffer is full the relay waits for 'drain' (or for the client to go away) before pulling the
 * next upstream chunk.
 */
export class SseWriter {
  constructor(private readonly res: ServerResponse) {}

  open(): void {
    this.res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
      Connection: 'keep-alive',
    });
  }

  /** Resolves once the event is handed to the socket (false when the client is gone). */
  async send(json: string): Promise<boolean> {
    if (this.res.destroyed) return false;
    if (this.res.write(`data: ${json}\n\n`)) return true;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => () => {
        this.res.off('drain', onDrain);
        this.res.off('close', onClose);
        resolve(ok);
      };
      const onDrain = done(true);
      const onClose = done(false);
      this.res.once('drain', onDrain);
      this.res.once('close', onClose);
    });
  }

  done(): void {
    if (!this.res.destroyed) this.res.end('data: [DONE]\n\n');
  }

  /** A failure after the first byte: an error event and no [DONE] (DESIGN §3.2). */
  fail(error: ErrorBody): void {
    if (!this.res.destroyed) this.res.end(`data: ${JSON.stringify(error)}\n\n`);
  }
}
