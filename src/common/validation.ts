import { ValidationError, ValidationPipe } from '@nestjs/common';
import { GatewayError } from './gateway-error';

/**
 * The one validation exception factory: the first failing field becomes a 400
 * `invalid_value` whose `param` is that field's path (`messages[0].role`).
 */
export function validationError(errors: ValidationError[]): GatewayError {
  const found = firstFailure(errors, '');
  if (!found) return GatewayError.invalidValue(null, 'The request is invalid.');
  return GatewayError.invalidValue(found.path, found.message);
}

function firstFailure(errors: ValidationError[], parent: string): { path: string; message: string } | undefined {
  for (const error of errors) {
    const path = /^\d+$/.test(error.property) ? `${parent}[${error.property}]` : parent ? `${parent}.${error.property}` : error.property;
    const constraints = Object.entries(error.constraints ?? {});
    if (constraints.length > 0) {
      // Constraints are listed bottom decorator first; the top one (the type check) reads best.
      const [rule, message] = constraints[constraints.length - 1];
      return { path, message: rule === 'whitelistValidation' ? `${path} is not a known field` : message };
    }
    const nested = firstFailure(error.children ?? [], path);
    if (nested) return nested;
  }
  return undefined;
}

/** Request fields take JSON types as given: no implicit conversion, unknown fields refused. */
export function createValidationPipe(): ValidationPipe {
  return new ValidationPipe({
    transform: true,
    whitelist: true,
    forbidNonWhitelisted: true,
    transformOptions: { enableImplicitConversion: false },
    exceptionFactory: validationError,
  });
}
