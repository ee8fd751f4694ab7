import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'drawbridge:public';

/** Opts a route out of the global API-key guard. Routes without it are denied by default. */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC, true);
