/**
 * The discovery endpoints (RFC 7644 §4): what this service provider supports, which resource
 * types it serves, and their schemas. Static documents: what the code below them really does.
 */
import { Urns } from './protocol.ts';

interface AttributeDefinition {
  name: string;
  type: string;
  multiValued: boolean;
  description: string;
  required: boolean;
  caseExact?: boolean;
  mutability: string;
  returned: string;
  uniqueness: string;
  subAttributes?: AttributeDefinition[];
}

const attribute = (
  name: string,
  options: {
    type?: string;
    multiValued?: boolean;
    required?: boolean;
    caseExact?: boolean;
    mutability?: string;
    returned?: string;
    uniqueness?: string;
    description: string;
    subAttributes?: AttributeDefinition[];
  },
): AttributeDefinition => ({
  name,
  type: options.type ?? 'string',
  multiValued: options.multiValued ?? false,
  description: options.description,
  required: options.required ?? false,
  ...(options.type === 'complex' ? {} : { caseExact: options.caseExact ?? false }),
  mutability: options.mutability ?? 'readWrite',
  returned: options.returned ?? 'default',
  uniqueness: options.uniqueness ?? 'none',
  ...(options.subAttributes === undefined ? {} : { subAttributes: options.subAttributes }),
});

const multiValuedValue = (what: string) => [
  attribute('value', { description: `The ${what}.` }),
  attribute('type', { description: `A label for the ${what} (work, home, other).` }),
  attribute('primary', { type: 'boolean', description: 'Whether this is the primary value.' }),
  attribute('display', { description: 'A human-readable name.', mutability: 'readOnly' }),
];

const userSchema = {
  schemas: [Urns.schema],
  id: Urns.user,
  name: 'User',
  description: 'User Account',
  attributes: [
    attribute('userName', {
      required: true,
      uniqueness: 'server',
      description:
        'Unique identifier for the User; compared without case. Maps to an IAM user per the policy.',
    }),
    attribute('name', {
      type: 'complex',
      description: "The components of the user's name.",
      subAttributes: [
        attribute('formatted', { description: 'The full name.' }),
        attribute('familyName', { description: 'The family name.' }),
        attribute('givenName', { description: 'The given name.' }),
        attribute('middleName', { description: 'The middle name.' }),
      ],
    }),
    attribute('displayName', { description: 'The name of the user, for display.' }),
    attribute('nickName', { description: 'The casual name of the user.' }),
    attribute('title', { description: "The user's title." }),
    attribute('userType', { description: 'The relationship to the organization.' }),
    attribute('active', {
      type: 'boolean',
      description:
        'false offboards the user (every SWR permission is revoked); true again rejoins its groups.',
    }),
    attribute('emails', {
      type: 'complex',
      multiValued: true,
      description: 'E-mail addresses.',
      subAttributes: multiValuedValue('e-mail address'),
    }),
    attribute('externalId', {
      caseExact: true,
      description: "The identity provider's identifier of the user.",
    }),
  ],
  meta: { resourceType: 'Schema', location: `/Schemas/${Urns.user}` },
};

const groupSchema = {
  schemas: [Urns.schema],
  id: Urns.group,
  name: 'Group',
  description:
    'Group: its members are in the teams of the policy that list it in idpGroups (or are named like it).',
  attributes: [
    attribute('displayName', {
      required: true,
      uniqueness: 'server',
      description: 'The name of the group; compared without case. Decides which teams it gives.',
    }),
    attribute('members', {
      type: 'complex',
      multiValued: true,
      description: 'The users in the group.',
      subAttributes: [
        attribute('value', { caseExact: true, mutability: 'immutable', description: 'The id of a User.' }),
        attribute('$ref', {
          type: 'reference',
          mutability: 'immutable',
          description: 'The URI of the User.',
        }),
        attribute('type', { mutability: 'immutable', description: 'User.' }),
      ],
    }),
    attribute('externalId', {
      caseExact: true,
      description: "The identity provider's identifier of the group.",
    }),
  ],
  meta: { resourceType: 'Schema', location: `/Schemas/${Urns.group}` },
};

const enterpriseUserSchema = {
  schemas: [Urns.schema],
  id: Urns.enterpriseUser,
  name: 'EnterpriseUser',
  description: 'Enterprise User',
  attributes: [
    attribute('employeeNumber', { description: 'An identifier assigned by the organization.' }),
    attribute('costCenter', { description: 'The cost center.' }),
    attribute('organization', { description: 'The organization.' }),
    attribute('division', { description: 'The division.' }),
    attribute('department', { description: 'The department.' }),
    attribute('manager', {
      type: 'complex',
      description: "The user's manager.",
      subAttributes: [attribute('value', { description: 'The id of the manager.' })],
    }),
  ],
  meta: { resourceType: 'Schema', location: `/Schemas/${Urns.enterpriseUser}` },
};

const schemas = [userSchema, groupSchema, enterpriseUserSchema];

const resourceTypes = [
  {
    schemas: [Urns.resourceType],
    id: 'User',
    name: 'User',
    endpoint: '/Users',
    description: 'User Account',
    schema: Urns.user,
    schemaExtensions: [{ schema: Urns.enterpriseUser, required: false }],
    meta: { resourceType: 'ResourceType', location: '/ResourceTypes/User' },
  },
  {
    schemas: [Urns.resourceType],
    id: 'Group',
    name: 'Group',
    endpoint: '/Groups',
    description: 'Group',
    schema: Urns.group,
    meta: { resourceType: 'ResourceType', location: '/ResourceTypes/Group' },
  },
];

const serviceProviderConfig = {
  schemas: [Urns.serviceProviderConfig],
  documentationUri: 'https://github.com/swr-access-sync#connect-your-identity-provider',
  patch: { supported: true },
  bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
  filter: { supported: true, maxResults: 1000 },
  changePassword: { supported: false },
  sort: { supported: false },
  etag: { supported: false },
  authenticationSchemes: [
    {
      type: 'oauthbearertoken',
      name: 'OAuth Bearer Token',
      description: 'The secret token of this service, sent as Authorization: Bearer <token>.',
      primary: true,
    },
  ],
  meta: { resourceType: 'ServiceProviderConfig', location: '/ServiceProviderConfig' },
};

/** A discovery document by path (`/Schemas/<urn>`, `/ResourceTypes/User`), or `undefined`. */
const discoveryDocument = (segments: readonly string[]): unknown => {
  const [first, second] = segments;
  if (first === 'ServiceProviderConfig' && second === undefined) return serviceProviderConfig;
  const list = first === 'Schemas' ? schemas : first === 'ResourceTypes' ? resourceTypes : undefined;
  if (list === undefined) return undefined;
  if (second === undefined)
    return {
      schemas: [Urns.listResponse],
      totalResults: list.length,
      startIndex: 1,
      itemsPerPage: list.length,
      Resources: list,
    };
  return list.find((item) => item.id === second);
};

export { discoveryDocument };
