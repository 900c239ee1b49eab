// Fragments as a Relay app written against caregate would have them: a
// refetchable patient card and a paginated patient list.
import { graphql } from 'relay-runtime';

export const patientCard = graphql`
  fragment PatientCard_patient on Patient
  @refetchable(queryName: "PatientCardRefetchQuery") {
    id
    firstName
    lastName
    dateOfBirth
    mrn
    primaryProvider {
      id
      name
    }
  }
`;

export const patientList = graphql`
  fragment PatientList_query on Query
  @refetchable(queryName: "PatientListPaginationQuery")
  @argumentDefinitions(
    first: { type: "Int", defaultValue: 20 }
    after: { type: "String" }
    search: { type: "String" }
  ) {
    patients(first: $first, after: $after, filter: { search: $search })
      @connection(key: "PatientList_patients", filters: ["filter"]) {
      totalCount
      edges {
        node {
          id
          ...PatientCard_patient
        }
      }
    }
  }
`;

export const providerQuery = graphql`
  query PatientCardProviderQuery($id: ID!) {
    node(id: $id) {
      ... on Provider {
        id
        name
        npi
      }
    }
  }
`;
