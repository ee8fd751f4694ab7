import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { AccountPool, AccountView, PoolTotals } from '../account-pool/account-pool.service';
import { AdminAuth } from '../auth/admin-auth.decorator';

@ApiTags('admin')
@ApiBearerAuth('admin')
@AdminAuth()
@Controller('admin/accounts')
export class AdminAccountsController {
  constructor(private readonly pool: AccountPool) {}

  /** Every configured account with its live state, and the pool totals. */
  @Get()
  list(): { object: 'list'; data: AccountView[]; pool: PoolTotals } {
    return { object: 'list', data: this.pool.snapshot(), pool: this.pool.totals() };
  }
}
