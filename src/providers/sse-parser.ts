/** One Server-Sent Event: its `event:` name (if any) and its joined `data:` lines. */
export interface SseEvent {
  event?: string;
  data: string;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Incremental SSE parser (the WHATWG event-stream rules the providers use): feed it bytes as
 * they arrive, get back the events completed so far. Handles \n, \r\n and \r line ends, events
 * split across chunks, comments (`: ping`) and multi-line data. It splits on bytes and decodes
 * whole lines only (a line end never falls inside a UTF-8 sequence), so it needs no streaming
 * decoder and holds nothing but the unfinished line between chunks.
 */
export class SseParser {
  private rest: Buffer | null = null;
  private event: string | undefined;
  private data: string[] = [];

  push(chunk: Uint8Array | string): SseEvent[] {
    const incoming = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const buf = this.rest ? Buffer.concat([this.rest, incoming]) : incoming;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < buf.length; i++) {
      const byte = buf[i];
      if (byte !== LF && byte !== CR) continue;
      // A \r at the very end may be the first half of \r\n: wait for the next chunk.
      if (byte === CR && i === buf.length - 1) break;
      this.line(buf.toString('utf8', start, i), events);
      if (byte === CR && buf[i + 1] === LF) i++;
      start = i + 1;
    }
    this.rest = start < buf.length ? Buffer.from(buf.subarray(start)) : null;
    return events;
  }

  private line(line: string, events: SseEvent[]): void {
    if (line === '') {
      if (this.data.length > 0) events.push({ event: this.event, data: this.data.join('\n') });
      this.event = undefined;
      this.data = [];
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
  }
}
