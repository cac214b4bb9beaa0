import { Logger } from '../../lib/util/log';

/** A logger that drops everything (servers started inside a test process). */
export const quietLog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quietLog };
