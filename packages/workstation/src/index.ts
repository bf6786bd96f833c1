export { Card, type KeySlot } from './card';
