import path from 'node:path';
import { writeChartData } from './chart-data';

/* eslint-disable no-console -- a build step's terminal */
const changed = writeChartData();
console.log(changed.length ? `wrote ${changed.map((f) => path.relative(process.cwd(), f)).join(', ')}` : 'chart data is up to date');
