export * from './ca-hierarchy';
export * from './certificate-profiles';
export * from './certificate-signing';
export * from './issuance';
export * from './lint';
