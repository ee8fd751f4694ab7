import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Params } from 'nestjs-pino';
import type { LogLevel } from '../config/app-config';
import { ensureRequestId } from './request-id';

/**
 * Structured JSON logs. A request line is written only at `debug` or below, and carries the id,
 * method, path (never the query string) and status: never headers, bodies or prompts. Header
 * paths are redacted anyway, in case some code logs a request object.
 */
export function loggerOptions(level: LogLevel): Params {
  const requestLines = logsRequestLines(level);
  return {
    // Above debug no request line is written, so pino-http (a child logger and an
    // AsyncLocalStorage scope per request: a tenth of the hot path's CPU) is not mounted at all;
    // the request id comes from the gateway's own middleware.
    ...(requestLines ? {} : { forRoutes: [] }),
    pinoHttp: {
      level,
      genReqId: (req: IncomingMessage, res: ServerResponse) => ensureRequestId(req, res),
      autoLogging: true,
      customLogLevel: () => 'debug',
      quietReqLogger: true,
      serializers: {
        req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, path: req.url.split('?', 1)[0] }),
        res: (res: { statusCode: number }) => ({ status: res.statusCode }),
      },
      redact: {
        paths: ['req.headers', 'headers.authorization', '*.authorization', '*.api_key', '*.apiKey', '*.auth_token', '*.token'],
        censor: '[redacted]',
      },
    },
  };
}

/** Whether a line is logged per request (pino-http mounted). */
export function logsRequestLines(level: LogLevel): boolean {
  return level === 'debug' || level === 'trace';
}
