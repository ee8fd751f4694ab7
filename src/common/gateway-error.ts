/**
 * The one error type of the gateway. Thrown from anywhere; the envelope filter turns it into
 * the OpenAI error body `{"error": {message, type, param, code}}` with its HTTP status.
 */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'rate_limit_error'
  | 'upstream_error'
  | 'service_unavailable'
  | 'server_error';

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string };
}

export class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    /** Seconds for `Retry-After`; 429 and 503 always carry one (at least 1). */
    readonly retryAfterSeconds?: number,
    /** Extra response headers (rate-limit headers on a 429, say). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'GatewayError';
  }

  toBody(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }

  static invalidJson(message = 'The request body is not valid JSON.'): GatewayError {
    return new GatewayError(400, 'invalid_request_error', 'invalid_json', message);
  }

  static invalidValue(param: string | null, message: string): GatewayError {
    return new GatewayError(400, 'invalid_request_error', 'invalid_value', message, param);
  }

  static notFound(message = 'Not found.'): GatewayError {
    return new GatewayError(404, 'invalid_request_error', 'not_found', message);
  }

  static modelNotFound(model: string): GatewayError {
    return new GatewayError(
      404,
      'invalid_request_error',
      'model_not_found',
      `The model '${truncate(model)}' does not exist.`,
      'model',
    );
  }

  static modelNotAllowed(model: string): GatewayError {
    return new GatewayError(
      403,
      'permission_error',
      'model_not_allowed',
      `This API key may not use the model '${truncate(model)}'.`,
      'model',
    );
  }

  static missingApiKey(): GatewayError {
    return new GatewayError(
      401,
      'authentication_error',
      'missing_api_key',
      'Missing API key: send it as "Authorization: Bearer db-...".',
    );
  }

  static invalidApiKey(): GatewayError {
    return new GatewayError(401, 'authentication_error', 'invalid_api_key', 'Invalid API key.');
  }

  static invalidAdminToken(): GatewayError {
    return new GatewayError(401, 'authentication_error', 'invalid_admin_token', 'Invalid or missing admin token.');
  }

  static storeUnavailable(what: string, retryAfterSeconds = 1): GatewayError {
    return new GatewayError(
      503,
      'service_unavailable',
      'store_unavailable',
      `${what} is unavailable; try again shortly.`,
      null,
      retryAfterSeconds,
    );
  }

  static draining(): GatewayError {
    return new GatewayError(503, 'service_unavailable', 'draining', 'The gateway is shutting down; retry on another instance.', null, 1);
  }
}

/** Keeps client-chosen strings short inside messages. */
export function truncate(text: string, max = 100): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
