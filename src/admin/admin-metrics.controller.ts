import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AdminAuth } from '../auth/admin-auth.decorator';
import { MetricsSnapshot, MetricsSnapshotService } from '../metrics/metrics-snapshot';

@ApiTags('admin')
@ApiBearerAuth('admin')
@AdminAuth()
@Controller('admin/metrics')
export class AdminMetricsController {
  constructor(private readonly snapshot: MetricsSnapshotService) {}

  /** Requests by status, latency p50/p95/p99, tokens, credits and pool totals, as JSON. */
  @Get()
  get(): Promise<MetricsSnapshot> {
    return this.snapshot.snapshot();
  }
}
