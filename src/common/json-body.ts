import type { IncomingMessage } from 'node:http';
import { GatewayError } from './gateway-error';

export const MAX_JSON_DEPTH = 64;

export interface JsonRequest extends IncomingMessage {
  body?: unknown;
  /** The bytes as received, kept so a relay can forward them without re-encoding. */
  rawBody?: Buffer;
}

/**
 * Reads and parses a JSON request body with the gateway's own rules: bodies over `limit` bytes
 * are 413 (chunked ones too, counted as they arrive), a body that is not `application/json` is
 * 415, an empty or unparsable body, a non-object, or nesting deeper than 64 levels is 400
 * `invalid_json`.
 */
export async function readJsonBody(req: JsonRequest, limit: number): Promise<void> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) {
    req.resume(); // drain so the connection stays usable
    throw tooLarge(limit);
  }
  const contentType = req.headers['content-type'];
  const hasBody = declared !== undefined ? Number(declared) > 0 : req.headers['transfer-encoding'] !== undefined;
  if (hasBody && !isJson(contentType)) {
    req.resume();
    throw new GatewayError(415, 'invalid_request_error', 'unsupported_media_type', 'Send the body as application/json.');
  }
  const raw = await collect(req, limit);
  if (raw.length === 0) throw GatewayError.invalidJson('The request body is empty; send a JSON object.');
  let body: unknown;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    throw GatewayError.invalidJson();
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw GatewayError.invalidJson('The request body must be a JSON object.');
  }
  if (depthExceeds(body, MAX_JSON_DEPTH)) {
    throw GatewayError.invalidJson(`The request body is nested deeper than ${MAX_JSON_DEPTH} levels.`);
  }
  req.rawBody = raw;
  req.body = body;
}

function isJson(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const type = contentType.split(';', 1)[0].trim().toLowerCase();
  return type === 'application/json' || (type.startsWith('application/') && type.endsWith('+json'));
}

function tooLarge(limit: number): GatewayError {
  return new GatewayError(413, 'invalid_request_error', 'request_too_large', `The request body is larger than ${limit} bytes.`);
}

function collect(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        chunks.length = 0;
        reject(tooLarge(limit));
        return; // keep reading (and discarding) so the 413 can be written on a live socket
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size));
    });
    const fail = (err: Error): void => {
      if (!failed) {
        failed = true;
        reject(err);
      }
    };
    req.on('error', fail);
    // A client that goes away mid-body never sends 'end'.
    req.on('close', () => {
      if (!req.complete) fail(GatewayError.invalidJson('The request body ended early.'));
    });
  });
}

/** Iterative walk, so hostile nesting cannot overflow the stack. */
export function depthExceeds(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [node, depth] = stack.pop()!;
    if (depth > max) return true;
    if (node === null || typeof node !== 'object') continue;
    const children = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return false;
}
