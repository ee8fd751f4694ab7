/*
 * B1, the Node floor (DESIGN §7): the least a Node proxy must do to put itself between a client
 * and the upstream. node:http in, one keep-alive undici Pool out; method, path, headers and body
 * forwarded as they came, the answer piped back chunk by chunk (SSE included), the upstream call
 * aborted when the client goes away. No auth, no parsing, no accounting: whatever G costs above
 * this is the price of being a gateway rather than a pipe.
 */
import { createServer, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { Pool } from 'undici';
import { serveIpc } from './ipc';

/** Per connection, not per message: never forwarded (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host']);

function forwardable(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

export function createFloorProxy(upstreamOrigin: string, connections = 512) {
  const pool = new Pool(upstreamOrigin, { connections, pipelining: 1, keepAliveTimeout: 30_000 });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const abort = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) abort.abort();
    });
    const upstream = await pool.request({
      method: req.method as 'POST',
      path: req.url ?? '/',
      headers: forwardable(req.headers) as Record<string, string>,
      body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks),
      signal: abort.signal,
    });
    res.writeHead(upstream.statusCode, forwardable(upstream.headers));
    await pipeline(upstream.body, res);
  };

  const server = createServer({ noDelay: true, keepAliveTimeout: 60_000 }, (req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end('{"error":{"message":"floor proxy: upstream failed","type":"upstream_error","param":null,"code":"upstream_error"}}');
      } else {
        res.destroy();
      }
    });
  });
  return { server, pool };
}

async function main(): Promise<void> {
  const upstreamOrigin = process.argv[2];
  if (!upstreamOrigin) throw new Error('usage: floor-proxy <upstream origin>');
  const { server, pool } = createFloorProxy(upstreamOrigin);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  serveIpc({
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.close();
      return true;
    },
  });
  const { port } = server.address() as AddressInfo;
  process.send!({ event: 'ready', url: `http://127.0.0.1:${port}` });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    console.error(`floor proxy failed to start: ${(err as Error).message}`);
    process.exit(1);
  });
}
