import { SetMetadata, UseGuards, applyDecorators } from '@nestjs/common';
import { AdminTokenGuard } from './admin-token.guard';

export const IS_ADMIN = 'drawbridge:admin';

/** Admin routes authenticate with the admin token instead of a `db-` key. */
export const AdminAuth = (): ClassDecorator & MethodDecorator =>
  applyDecorators(SetMetadata(IS_ADMIN, true), UseGuards(AdminTokenGuard));
