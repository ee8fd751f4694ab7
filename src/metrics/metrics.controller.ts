import { Controller, Get, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import { PrometheusController } from '@willsoto/nestjs-prometheus';
import type { Response } from 'express';
import { Public } from '../common/public.decorator';
import { PoolGauges } from './pool-gauges';

/** `GET /metrics`, Prometheus text format, no auth (it carries no secrets and no per-key labels). */
@ApiExcludeController()
@Public()
@Controller('metrics')
export class MetricsController extends PrometheusController {
  constructor(private readonly gauges: PoolGauges) {
    super();
  }

  @Get()
  override index(@Res({ passthrough: true }) response: Response): Promise<string> {
    this.gauges.refresh();
    return super.index(response);
  }
}
