export * from './config';
export * from './app';
export * from './domain/enrolment';
