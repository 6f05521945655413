// Key Vault holding the merchant credentials (merchant-account-<merchantAccountId>) and the
// idempotency HMAC key. RBAC only (no access policies); the app identity may only READ secrets.

@description('Key Vault name (3-24 characters).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the vault.')
param tags object = {}

@description('principalId of the app\'s user-assigned identity; granted Key Vault Secrets User only.')
param appPrincipalId string

@description('Optional principalId of the deploying principal; granted Key Vault Secrets Officer so it can seed and rotate secrets. Empty: none.')
param userPrincipalId string = ''

@description('principalType of userPrincipalId: User, or ServicePrincipal when a pipeline provisions.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param userPrincipalType string = 'User'

// Role definition IDs (platform.md 9.5).
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: No VNet in this deployment; the Flex Consumption app reaches the vault over its public endpoint and is not a trusted Microsoft service, so a default-deny firewall would block it. Access is Entra ID + RBAC only (Secrets User for the app). Add VNet integration + a private endpoint to enable Deny.
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109: without VNet integration the function app needs the public endpoint; authorization is RBAC-only and secrets are read-only for the app.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

// The app identity reads secrets and nothing else: exactly one role, Key Vault Secrets User, on this vault.
resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource userSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(userPrincipalId)) {
  name: guid(vault.id, userPrincipalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
