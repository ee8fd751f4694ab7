import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Client-sent ids are echoed only when they are short, printable and header-safe. */
const SAFE_ID = /^[\w.:@/+=-]{1,128}$/;

type WithId = IncomingMessage & { id?: unknown };

/**
 * Gives every request one id: the client's `X-Request-Id` when it is safe to echo, else a fresh
 * uuid. Sets the response header once; later calls return the same id.
 */
export function ensureRequestId(req: IncomingMessage, res: ServerResponse): string {
  const existing = (req as WithId).id;
  if (typeof existing === 'string') return existing;
  const sent = req.headers['x-request-id'];
  const id = typeof sent === 'string' && SAFE_ID.test(sent) ? sent : randomUUID();
  (req as WithId).id = id;
  if (!res.headersSent) res.setHeader('X-Request-Id', id);
  return id;
}
