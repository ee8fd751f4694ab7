import { ArgumentsHost, Catch, ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorType, GatewayError } from './gateway-error';
import { ensureRequestId } from './request-id';

/**
 * Turns every error — GatewayError, Nest's own HttpExceptions and anything unexpected — into the
 * OpenAI error envelope. Unexpected errors are logged with the request id and answered 500
 * without internals.
 */
@Catch()
export class EnvelopeFilter implements ExceptionFilter {
  private readonly logger = new Logger('EnvelopeFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    answerError(http.getRequest<IncomingMessage>(), http.getResponse<ServerResponse>(), exception, this.logger);
  }
}

/**
 * Answers `exception` in the error envelope: the filter's work, shared with the routes served
 * outside Nest's pipeline. Unexpected errors are logged (with the request id, never the request).
 */
export function answerError(req: IncomingMessage, res: ServerResponse, exception: unknown, logger: Logger): void {
  const requestId = ensureRequestId(req, res);
  const error = toGatewayError(exception);
  if (error.status >= 500 && error.code === 'internal_error') {
    logger.error({ requestId, err: describe(exception) }, 'unexpected error');
  }
  if (res.headersSent) {
    // A stream already started: the relay ends it with its own SSE error event.
    if (!res.writableEnded) res.end();
    return;
  }
  const headers: Record<string, string> = { ...error.headers, 'Content-Type': JSON_CONTENT_TYPE };
  if (error.retryAfterSeconds !== undefined || error.status === 429 || error.status === 503) {
    headers['Retry-After'] = String(Math.max(1, Math.ceil(error.retryAfterSeconds ?? 1)));
  }
  res.writeHead(error.status, headers).end(JSON.stringify(error.toBody()));
}

export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

const NEST_STATUS: Record<number, [ErrorType, string]> = {
  400: ['invalid_request_error', 'invalid_value'],
  401: ['authentication_error', 'invalid_api_key'],
  403: ['permission_error', 'permission_denied'],
  404: ['invalid_request_error', 'not_found'],
  405: ['invalid_request_error', 'not_found'],
  413: ['invalid_request_error', 'request_too_large'],
  415: ['invalid_request_error', 'unsupported_media_type'],
  429: ['rate_limit_error', 'rate_limit_exceeded'],
  503: ['service_unavailable', 'service_unavailable'],
};

export function toGatewayError(exception: unknown): GatewayError {
  if (exception instanceof GatewayError) return exception;
  if (exception instanceof HttpException) {
    const status = exception.getStatus();
    const [type, code] = NEST_STATUS[status] ?? (status < 500 ? ['invalid_request_error', 'invalid_request'] : ['server_error', 'internal_error']);
    const message = status === 404 ? 'Unknown route.' : status >= 500 ? 'Internal server error.' : exception.message;
    return new GatewayError(status, type, code, message);
  }
  return new GatewayError(500, 'server_error', 'internal_error', 'Internal server error.');
}

function describe(exception: unknown): unknown {
  return exception instanceof Error ? { name: exception.name, message: exception.message, stack: exception.stack } : String(exception);
}
