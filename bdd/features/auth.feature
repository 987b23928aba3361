Feature: Only signed-in callers may read or write users
  Creating a user, and reading users and messages, needs a bearer token signed with the
  gateway's key. Without one, the gateway refuses and says how to authenticate.

  Scenario: Creating a user without a token is refused
    Given I am not signed in
    When I create a user named "Eve" with a new email address
    Then the answer is 401
    And the answer asks for a bearer token
    And no user has that email address

  Scenario: Creating a user with a token signed by someone else is refused
    Given I hold a token signed with a key the gateway does not know
    When I create a user named "Mallory" with a new email address
    Then the answer is 401
    And the answer asks for a bearer token, saying the token is not valid
    And no user has that email address

  Scenario: Reading users without a token is refused
    Given I am not signed in
    When I list the users
    Then the answer is 401
    And the answer asks for a bearer token

  Scenario: A signed-in caller reads the users
    Given I am signed in as "alice"
    When I list the users
    Then the answer is 200
