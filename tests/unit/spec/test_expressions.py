"""Unit tests for the safe expression language (sdv_llmsynthor.spec.expressions)."""

import re

import numpy as np
import pandas as pd
import pytest

from sdv_llmsynthor.errors import ExpressionError
from sdv_llmsynthor.spec.expressions import (
    MAX_EXPRESSION_LENGTH,
    BinaryOp,
    BoolOp,
    Call,
    Column,
    Compare,
    Expression,
    Implies,
    Literal,
    Membership,
    UnaryOp,
    evaluate_record,
    parse_expression,
)

A, B, C = Column('a'), Column('b'), Column('c')


@pytest.fixture
def people():
    """A small table with missing values of several kinds."""
    return pd.DataFrame({
        'age': [3, 4, 17, 30, 70, np.nan],
        'education': ['Preschool', 'Elementary', 'High School', 'Bachelor', None, 'Master'],
        'employment': ['None', 'None', 'Student', 'Employed', 'Retired', 'Employed'],
        'income': [0.0, 0.0, 1200.5, 52000.0, 18000.0, np.nan],
    })


# -- parsing: precedence and structure ------------------------------------------------------


def test_parse_expression__implication_is_lowest_precedence():
    # Run
    expression = parse_expression('a > 1 or b < 2 -> c == 3 and a != b')

    # Assert
    expected = Implies(
        BoolOp('or', (Compare('>', A, Literal(1)), Compare('<', B, Literal(2)))),
        BoolOp('and', (Compare('==', C, Literal(3)), Compare('!=', A, B))),
    )
    assert expression.root == expected


def test_parse_expression__implication_is_right_associative():
    # Run
    expression = parse_expression('a -> b -> c')

    # Assert
    assert expression.root == Implies(A, Implies(B, C))
    assert parse_expression('(a -> b) -> c').root == Implies(Implies(A, B), C)


def test_parse_expression__and_binds_tighter_than_or_and_not_tighter_than_and():
    # Run
    or_and = parse_expression('a or b and c')
    not_and = parse_expression('not a and b')
    not_compare = parse_expression('not a == 1')

    # Assert
    assert or_and.root == BoolOp('or', (A, BoolOp('and', (B, C))))
    assert not_and.root == BoolOp('and', (UnaryOp('not', A), B))
    assert not_compare.root == UnaryOp('not', Compare('==', A, Literal(1)))


def test_parse_expression__arithmetic_precedence():
    # Run
    expression = parse_expression('1 + 2 * -a % 3 - b / c')

    # Assert
    product = BinaryOp('%', BinaryOp('*', Literal(2), UnaryOp('-', A)), Literal(3))
    expected = BinaryOp('-', BinaryOp('+', Literal(1), product), BinaryOp('/', B, C))
    assert expression.root == expected


def test_parse_expression__flattens_and_chains():
    # Run
    flat = parse_expression('a and b and c')
    grouped = parse_expression('(a and b) and c')

    # Assert
    assert flat.root == BoolOp('and', (A, B, C))
    assert grouped == flat


def test_parse_expression__in_and_not_in():
    # Run
    member = parse_expression("education in ['Preschool', \"Elementary\", 3, -2.5, true,]")
    not_member = parse_expression('age not in []')

    # Assert
    values = (Literal('Preschool'), Literal('Elementary'), Literal(3), Literal(-2.5), Literal(True))
    assert member.root == Membership(Column('education'), values)
    assert not_member.root == Membership(Column('age'), (), negated=True)


def test_parse_expression__backtick_column_names():
    # Run
    expression = parse_expression(r'`product category` == `it\`s` and `and` > 1')

    # Assert
    assert expression.columns == frozenset({'product category', 'it`s', 'and'})


@pytest.mark.parametrize(
    ('text', 'value'),
    [
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'back\\slash'", 'back\\slash'),
        (r"'tab\tnew\nline\r'", 'tab\tnew\nline\r'),
        (r"'\u00e9t\u00E9'", 'été'),
        ('"single \' inside"', "single ' inside"),
    ],
)
def test_parse_expression__string_escapes(text, value):
    # Run
    expression = parse_expression(text)

    # Assert
    assert expression.root == Literal(value)


@pytest.mark.parametrize(
    ('text', 'value'),
    [('42', 42), ('2.5', 2.5), ('.5', 0.5), ('1e3', 1000.0), ('2.5E-3', 0.0025), ('7.', 7.0)],
)
def test_parse_expression__numbers(text, value):
    # Run
    expression = parse_expression(text)

    # Assert
    assert expression.root == Literal(value)
    assert type(expression.root.value) is type(value)


def test_parse_expression__python_style_constants():
    # Run
    lower = parse_expression('flag == true or other == false')
    upper = parse_expression('flag == True or other == False')
    null = parse_expression('None')

    # Assert
    assert lower == upper
    assert null.root == Literal(None)
    assert Literal(1) != Literal(1.0) != Literal(True)


# -- parsing: errors ------------------------------------------------------------------------


def test_parse_expression__unknown_column_message():
    # Setup
    text = 'agee > 3 and education == "x"'

    # Run and Assert
    message = (
        "Unknown column 'agee' in expression 'agee > 3 and education == \"x\"'; "
        "known columns: 'age', 'education', 'sex'. Did you mean 'age'?"
    )
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression(text, columns=['sex', 'education', 'age'])


def test_parse_expression__unknown_columns_listing_is_truncated():
    # Setup
    known = [f'c{i:02d}' for i in range(25)]

    # Run and Assert
    message = (
        "Unknown columns 'x', 'y' in expression 'x + y > c01'; known columns: "
        + ', '.join(f"'c{i:02d}'" for i in range(20))
        + ', ... (5 more)'
    )
    with pytest.raises(ExpressionError, match=re.escape(message) + '$'):
        parse_expression('x + y > c01', columns=known)


def test_parse_expression__unexpected_token_names_position():
    # Run and Assert
    message = "Unexpected '.' at position 3 in expression 'age.__class__ > 3'"
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression('age.__class__ > 3')


def test_parse_expression__chained_comparison():
    # Run and Assert
    message = (
        "Chained comparison '<' at position 6 in expression '1 < a < 3'; comparisons do not "
        "chain, combine them with 'and' (a < b and b < c)"
    )
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression('1 < a < 3')


def test_parse_expression__unknown_function():
    # Run and Assert
    message = (
        "Unknown function 'open' at position 0 in expression \"open('f')\"; "
        'allowed functions: abs, isnull, max, min, notnull, round'
    )
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression("open('f')")


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ("__import__('os').system('x')", "Unknown function '__import__' at position 0"),
        ('age.__class__', "Unexpected '.' at position 3"),
        ('().__class__', "Unexpected ')' at position 1"),
        ("exec('1')", "Unknown function 'exec' at position 0"),
        ("eval('1 + 1')", "Unknown function 'eval' at position 0"),
        ('lambda: 1', "Unexpected ':' at position 6"),
        ('a; b', "Unexpected ';' at position 1"),
        ('a = 1', "Unexpected '=' at position 2"),
        ('[x for x in y]', "Unexpected '[' at position 0"),
        ('a[0]', "Unexpected '[' at position 1"),
        ('{}', "Unexpected '{' at position 0"),
        ('a if b else c', "Unexpected 'if' at position 2"),
        ('f"{a}"', "Unexpected '\"{a}\"' at position 1"),
        ('a @ b', "Unexpected '@' at position 2"),
        ('abs.__globals__', "Unexpected '.' at position 3"),
        ('min(a, b)(1)', "Unexpected '(' at position 9"),
        ('`a`(1)', "Unexpected '(' at position 3"),
        ("'unterminated", 'Unterminated string starting at position 0'),
        ('a ** 2', "Unexpected '*' at position 3"),
        ('a & b', "Unexpected '&' at position 2"),
        ('\\x41', "Unexpected '\\\\' at position 0"),
    ],
)
def test_parse_expression__malicious_or_foreign_syntax(text, message):
    # Run and Assert
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression(text)


def test_parse_expression__too_long():
    # Setup
    text = ' or '.join(['a > 1'] * 600)
    assert len(text) > MAX_EXPRESSION_LENGTH

    # Run and Assert
    message = f'Expression is too long ({len(text)} characters; the maximum is 2000)'
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression(text)


@pytest.mark.parametrize(
    'text', ['(' * 500 + 'a' + ')' * 500, '-' * 500 + 'a', 'not ' * 300 + 'a', '1' + ' + 1' * 300],
)
def test_parse_expression__too_deep(text):
    # Run and Assert
    with pytest.raises(ExpressionError, match=re.escape('nests too deeply (more than 100 levels)')):
        parse_expression(text)


def test_parse_expression__moderate_nesting_is_fine():
    # Run
    expression = parse_expression('(' * 90 + 'a' + ')' * 90 + ' + 1')

    # Assert
    assert expression.root == BinaryOp('+', A, Literal(1))


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('', 'Expression is empty.'),
        (
            'age <',
            "Unexpected end of expression at position 5 in expression 'age <'; expected a value",
        ),
        ('age > 1 and', 'Unexpected end of expression at position 11'),
        ('(age > 1', "expected ')'"),
        (
            'age not 3',
            "Unexpected '3' at position 8 in expression 'age not 3'; expected 'in' after 'not'",
        ),
        ('age in 3', "expected '[' after 'in'"),
        ('age in [a]', "Unexpected 'a' at position 8"),
        ("x == null", 'Comparison with null is always false at position 2'),
        ("x in ['a', null]", 'null in a list never matches at position 11'),
        ('age and 1', "The operand '1' of 'and' is not a condition (true or false) at position 4"),
        ("'a' + 1", "Operator '+' needs numbers, got \"'a'\", at position 4"),
        ('a == not b', "Unexpected 'not' at position 5"),
        ('min(a)', 'min() takes at least 2 arguments (1 given) at position 0'),
        ('abs(a, b)', 'abs() takes 1 argument (2 given) at position 0'),
        ('round(a, 1.5)', 'The number of digits of round() must be an integer'),
        ("'\\q'", "Unknown escape '\\\\q' at position 1"),
        ('99999999999999999999', "Number '99999999999999999999' at position 0 is out of range"),
        ('1e999', "Number '1e999' at position 0 is out of range"),
        ('``', 'Empty column name in backticks at position 0'),
        ('a = = b', "use '==' to compare"),
    ],
)
def test_parse_expression__syntax_errors(text, message):
    # Run and Assert
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression(text)


def test_parse_expression__not_a_string():
    # Run and Assert
    message = 'An expression must be a string, got int.'
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression(3)


# -- the Expression object ------------------------------------------------------------------


@pytest.mark.parametrize(
    'text',
    [
        "age < 18 -> education in ['Preschool', 'Elementary', 'High School']",
        'a -> b -> c',
        '(a -> b) -> c',
        '(a or b) and not (c or a)',
        'not not a',
        'a - (b - c) - -c',
        '(a + b) * c % 2 / -(a - 1)',
        '-(-a)',
        '(a > b) == (b > c)',
        "`weird name` not in [1, -2, 3.5, 'x\\'y\\n', true, false]",
        r"`a\`` == 'q'",
        'abs(a - b) + min(a, b, c) * max(a, 1) + round(c, -2) + round(a)',
        'isnull(a) or notnull(`in`)',
        '1e-07 < a and a <= 1.5e+300',
        "d >= '2024-01-31' and True",
    ],
)
def test_str__round_trips(text):
    # Setup
    expression = parse_expression(text)

    # Run
    canonical = str(expression)
    reparsed = parse_expression(canonical)

    # Assert
    assert reparsed == expression
    assert reparsed.root == expression.root
    assert str(reparsed) == canonical


def test_str__canonical_form():
    # Run
    canonical = str(parse_expression("((age<18))->IN_ == \"it's\" or   x"))

    # Assert
    assert canonical == "age < 18 -> IN_ == 'it\\'s' or x"


def test_expression__columns_and_text():
    # Run
    expression = parse_expression("  age >= 65 and `job title` in ['x'] or isnull(income + age)  ")

    # Assert
    assert expression.columns == frozenset({'age', 'job title', 'income'})
    assert expression.text == "  age >= 65 and `job title` in ['x'] or isnull(income + age)  "
    assert repr(expression) == f'Expression({expression.text!r})'
    assert Expression(expression.root).text == str(expression)


@pytest.mark.parametrize(
    ('text', 'is_predicate'),
    [
        ('age >= 65', True),
        ("employment == 'Employed' and age >= 18", True),
        ('a -> b', True),
        ('not a', True),
        ("a not in ['x']", True),
        ('isnull(a)', True),
        ('true', True),
        ('age + 1', False),
        ('age', False),
        ('max(a, b)', False),
        ("'x'", False),
    ],
)
def test_expression__is_predicate(text, is_predicate):
    # Run and Assert
    assert parse_expression(text).is_predicate is is_predicate


def test_expression__is_immutable_and_hashable():
    # Setup
    expression = parse_expression('a > 1')

    # Run and Assert
    with pytest.raises(AttributeError):
        expression.root = Literal(True)
    with pytest.raises(AttributeError):
        expression.root.op = '<'

    assert {expression, parse_expression('(a) > (1)')} == {expression}


# -- evaluation -----------------------------------------------------------------------------


def test_evaluate__paper_rule(people):
    # Setup
    rule = parse_expression("age < 5 -> education == 'Preschool'", columns=people.columns)

    # Run
    result = rule.evaluate(people)

    # Assert
    assert result.dtype == bool
    np.testing.assert_array_equal(result, [True, False, True, True, True, True])


def test_evaluate__validity_rule_with_membership(people):
    # Setup
    rule = parse_expression("age < 18 -> education in ['Preschool', 'Elementary', 'High School']")

    # Run
    result = rule.evaluate(people)

    # Assert
    np.testing.assert_array_equal(result, [True, True, True, True, True, True])


def test_evaluate__implication_truth_table():
    # Setup
    frame = pd.DataFrame({'p': [False, False, True, True], 'q': [False, True, False, True]})

    # Run
    result = parse_expression('p -> q').evaluate(frame)

    # Assert
    np.testing.assert_array_equal(result, [True, True, False, True])
    converse = parse_expression('q -> p').evaluate(frame)
    np.testing.assert_array_equal(converse, [True, False, True, True])


def test_evaluate__aggregation_predicates(people):
    # Run
    seniors = parse_expression('age >= 65').evaluate(people)
    employed_adults = parse_expression("employment == 'Employed' and age >= 18").evaluate(people)

    # Assert
    np.testing.assert_array_equal(seniors, [False, False, False, False, True, False])
    np.testing.assert_array_equal(employed_adults, [False, False, False, True, False, False])


def test_evaluate__comparisons_with_missing_values_are_false(people):
    # Setup
    texts = ['age != 1', 'age == age', "education != 'x'", "education not in ['x']", 'age > -1']

    # Run
    results = {text: parse_expression(text).evaluate(people) for text in texts}

    # Assert
    np.testing.assert_array_equal(results['age != 1'], [True] * 5 + [False])
    np.testing.assert_array_equal(results['age == age'], [True] * 5 + [False])
    np.testing.assert_array_equal(results["education != 'x'"], [True] * 4 + [False, True])
    np.testing.assert_array_equal(results["education not in ['x']"], [True] * 4 + [False, True])
    np.testing.assert_array_equal(results['age > -1'], [True] * 5 + [False])


def test_evaluate__isnull_and_notnull():
    # Setup
    frame = pd.DataFrame({
        'number': [1.0, np.nan, 3.0],
        'text': ['a', None, np.nan],
        'when': pd.to_datetime(['2024-01-01', None, '2024-03-01']),
        'nullable': pd.array([1, None, 3], dtype='Int64'),
    })

    # Run
    isnull = {name: parse_expression(f'isnull({name})').evaluate(frame) for name in frame}
    notnull = parse_expression('notnull(text)').evaluate(frame)

    # Assert
    np.testing.assert_array_equal(isnull['number'], [False, True, False])
    np.testing.assert_array_equal(isnull['text'], [False, True, True])
    np.testing.assert_array_equal(isnull['when'], [False, True, False])
    np.testing.assert_array_equal(isnull['nullable'], [False, True, False])
    np.testing.assert_array_equal(notnull, [True, False, False])


def test_evaluate__membership_and_equality_across_types():
    # Setup
    frame = pd.DataFrame({
        'number': [1, 2, 3],
        'real': [1.0, 2.5, np.nan],
        'text': ['1', '2', 'x'],
        'flag': [True, False, True],
        'mixed': ['1', 1, None],
    })

    # Run
    results = {
        text: parse_expression(text).evaluate(frame)
        for text in [
            'number in [1.0, 3]', "number in ['1']", 'real in [1]', 'text in [1, 2]',
            "text in ['1', 'x']", 'flag in [true]', 'flag not in [true]', 'mixed in [1]',
            "mixed in ['1']", 'text == 1', 'text != 1', 'number == 1.0', 'number == real',
        ]
    }

    # Assert
    expected = {
        'number in [1.0, 3]': [True, False, True],
        "number in ['1']": [False, False, False],
        'real in [1]': [True, False, False],
        'text in [1, 2]': [False, False, False],
        "text in ['1', 'x']": [True, False, True],
        'flag in [true]': [True, False, True],
        'flag not in [true]': [False, True, False],
        'mixed in [1]': [False, True, False],
        "mixed in ['1']": [True, False, False],
        'text == 1': [False, False, False],
        'text != 1': [True, True, True],
        'number == 1.0': [True, False, False],
        'number == real': [True, False, False],
    }
    for text, values in expected.items():
        np.testing.assert_array_equal(results[text], values, err_msg=text)


def test_evaluate__datetime_column_against_iso_strings():
    # Setup
    frame = pd.DataFrame({
        'signup': pd.to_datetime(['2024-01-30', '2024-02-15 08:00', None], format='ISO8601'),
        'aware': pd.to_datetime(['2024-01-31 00:30', '2024-01-31 02:00', '2024-01-30 00:00'])
        .tz_localize('Europe/Paris'),
    })

    # Run
    after = parse_expression("signup >= '2024-01-31'").evaluate(frame)
    listed = parse_expression("signup in ['2024-01-30', '2024-03-01']").evaluate(frame)
    flipped = parse_expression("'2024-02-15T08:00:00' == signup").evaluate(frame)
    aware_utc = parse_expression("aware < '2024-01-31'").evaluate(frame)
    aware_offset = parse_expression("aware < '2024-01-31T01:00:00+01:00'").evaluate(frame)

    # Assert
    np.testing.assert_array_equal(after, [False, True, False])
    np.testing.assert_array_equal(listed, [True, False, False])
    np.testing.assert_array_equal(flipped, [False, True, False])
    np.testing.assert_array_equal(aware_utc, [True, False, True])
    np.testing.assert_array_equal(aware_offset, [True, False, True])


def test_evaluate__datetime_against_a_non_iso_string():
    # Setup
    frame = pd.DataFrame({'signup': pd.to_datetime(['2024-01-30'])})
    expression = parse_expression("signup > '01/02/2024'")

    # Run and Assert
    message = (
        "Cannot compare dates/times with '01/02/2024': write dates in ISO format, e.g. "
        "'2024-01-31' or '2024-01-31 08:30:00', in expression \"signup > '01/02/2024'\""
    )
    with pytest.raises(ExpressionError, match=re.escape(message)):
        expression.evaluate(frame)


def test_evaluate__ordering_strings_against_numbers(people):
    # Setup
    expression = parse_expression('education < 3')

    # Run and Assert
    message = (
        "Cannot compare strings ('education') with numbers ('3') using '<' "
        "in expression 'education < 3'"
    )
    with pytest.raises(ExpressionError, match=re.escape(message)):
        expression.evaluate(people)


def test_evaluate__ordering_mixed_values_wraps_type_error():
    # Setup
    frame = pd.DataFrame({'mixed': ['a', 1, 2.5]})

    # Run
    message = "Cannot compare 'mixed' with '2' using '>'"
    with pytest.raises(ExpressionError, match=re.escape(message)) as info:
        parse_expression('mixed > 2').evaluate(frame)

    # Assert
    assert isinstance(info.value.__cause__, TypeError)


def test_evaluate__arithmetic_on_strings(people):
    # Run and Assert
    message = (
        "Operator '+' needs numbers, but 'education' gives strings "
        "in expression 'education + 1'"
    )
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression('education + 1').evaluate(people)


def test_evaluate__logic_on_numbers(people):
    # Run and Assert
    message = (
        "The operand 'age' of 'and' must be a condition (true or false), but it gives numbers "
        "in expression 'age and income > 1'"
    )
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression('age and income > 1').evaluate(people)


def test_evaluate__division_by_zero_gives_inf_or_nan():
    # Setup
    frame = pd.DataFrame({'x': [1, 0, -2, 7], 'zero': [0, 0, 0, 2]})

    # Run
    divided = parse_expression('x / zero').evaluate(frame)
    remainder = parse_expression('x % zero').evaluate(frame)
    constant = parse_expression('1 / 0 + 7 % 0').evaluate(frame)

    # Assert
    np.testing.assert_array_equal(divided, [np.inf, np.nan, -np.inf, 3.5])
    np.testing.assert_array_equal(remainder, [np.nan, np.nan, np.nan, 1.0])
    assert np.isnan(constant).all()
    assert len(constant) == 4


def test_evaluate__functions():
    # Setup
    frame = pd.DataFrame({'a': [-1.5, 2.0, np.nan, 2.5], 'b': [3, -4, 5, 6]})

    # Run
    results = {
        text: parse_expression(text).evaluate(frame)
        for text in ['abs(a)', 'abs(b)', 'min(a, b)', 'max(a, b, 2)', 'round(a)', 'round(b, -1)']
    }

    # Assert
    np.testing.assert_array_equal(results['abs(a)'], [1.5, 2.0, np.nan, 2.5])
    np.testing.assert_array_equal(results['abs(b)'], [3, 4, 5, 6])
    np.testing.assert_array_equal(results['min(a, b)'], [-1.5, -4.0, np.nan, 2.5])
    np.testing.assert_array_equal(results['max(a, b, 2)'], [3.0, 2.0, np.nan, 6.0])
    np.testing.assert_array_equal(results['round(a)'], [-2.0, 2.0, np.nan, 2.0])
    np.testing.assert_array_equal(results['round(b, -1)'], [0, 0, 0, 10])


def test_evaluate__nullable_and_categorical_columns():
    # Setup
    frame = pd.DataFrame({
        'count': pd.array([1, None, 30], dtype='Int64'),
        'flag': pd.array([True, None, False], dtype='boolean'),
        'category': pd.Categorical(['b', 'a', None]),
        'small': np.array([100, 120, 127], dtype=np.int8),
        'text': pd.array(['x', None, 'z'], dtype='string'),
    })

    # Run
    results = {
        text: parse_expression(text).evaluate(frame)
        for text in [
            'count >= 1', 'flag -> count > 5', 'not flag', "category in ['a', 'b']",
            'small + 1000 > 1100', "text != 'x'",
        ]
    }

    # Assert
    np.testing.assert_array_equal(results['count >= 1'], [True, False, True])
    np.testing.assert_array_equal(results['flag -> count > 5'], [False, True, True])
    np.testing.assert_array_equal(results['not flag'], [False, True, True])
    np.testing.assert_array_equal(results["category in ['a', 'b']"], [True, True, False])
    np.testing.assert_array_equal(results['small + 1000 > 1100'], [False, True, True])
    np.testing.assert_array_equal(results["text != 'x'"], [False, False, True])


def test_evaluate__unknown_column(people):
    # Run and Assert
    message = "Unknown column 'salary' in expression 'salary > 1'; known columns: 'age'"
    with pytest.raises(ExpressionError, match=re.escape(message)):
        parse_expression('salary > 1').evaluate(people)


def test_evaluate__constant_and_column_results(people):
    # Setup
    original = people.copy()

    # Run
    constant = parse_expression('true').evaluate(people)
    column = parse_expression('age').evaluate(people)
    column[0] = 99

    # Assert
    np.testing.assert_array_equal(constant, [True] * 6)
    assert constant.dtype == bool
    pd.testing.assert_frame_equal(people, original)


def test_evaluate__empty_frame():
    # Setup
    frame = pd.DataFrame({'age': pd.Series([], dtype=float), 'name': pd.Series([], dtype=object)})

    # Run
    result = parse_expression("age > 1 -> name == 'x'").evaluate(frame)

    # Assert
    assert result.shape == (0,)
    assert result.dtype == bool


def test_evaluate__not_a_frame():
    # Run and Assert
    with pytest.raises(TypeError, match=re.escape('needs a pandas DataFrame, got dict')):
        parse_expression('a > 1').evaluate({'a': [1]})


def _random_tree(rng, depth):
    """Return (text with every operation parenthesized, numpy reference function)."""
    if depth == 0 or rng.random() < 0.25:
        if rng.random() < 0.7:
            name = str(rng.choice(['a', 'b', 'c']))
            return name, lambda frame, name=name: frame[name].to_numpy()

        value = float(rng.choice([0.0, 0.5, 2.0, 3.0, 1e-3]))
        return repr(value), lambda frame, value=value: np.full(len(frame), value)

    if rng.random() < 0.15:
        text, function = _random_tree(rng, depth - 1)
        return f'(-{text})', lambda frame: np.negative(function(frame))

    operator = str(rng.choice(['+', '-', '*', '/', '%']))
    numpy_function = {
        '+': np.add, '-': np.subtract, '*': np.multiply, '/': np.true_divide, '%': np.remainder,
    }[operator]
    left_text, left = _random_tree(rng, depth - 1)
    right_text, right = _random_tree(rng, depth - 1)
    return (
        f'({left_text} {operator} {right_text})',
        lambda frame: numpy_function(left(frame), right(frame)),
    )


def test_evaluate__arithmetic_matches_numpy_on_random_expressions():
    # Setup
    rng = np.random.default_rng(20261121)
    frame = pd.DataFrame({
        'a': rng.normal(size=50).round(2),
        'b': rng.choice([0.0, 1.0, -2.5, 3.25, np.nan], size=50),
        'c': rng.integers(-3, 4, size=50).astype(float),
    })

    for _ in range(200):
        text, reference = _random_tree(rng, depth=4)
        with np.errstate(all='ignore'):
            expected = reference(frame)

        # Run
        expression = parse_expression(text)
        result = expression.evaluate(frame)
        canonical_result = parse_expression(str(expression)).evaluate(frame)

        # Assert
        np.testing.assert_array_equal(result, expected, err_msg=text)
        np.testing.assert_array_equal(canonical_result, expected, err_msg=str(expression))


def test_parse_expression__random_token_soup_only_raises_expression_error():
    # Setup
    pieces = [
        'a', 'b', '`c d`', '1', '2.5', "'x'", 'true', 'null', '(', ')', '[', ']', ',', '->',
        'and', 'or', 'not', 'in', '==', '<', '+', '-', '*', '/', '%', 'abs', 'min', 'isnull',
        '.', ';', '=', '__import__',
    ]
    frame = pd.DataFrame({'a': [1.0, np.nan], 'b': [True, False], 'c d': ['x', None]})
    rng = np.random.default_rng(7)
    parsed = 0

    for _ in range(3000):
        text = ' '.join(rng.choice(pieces, size=rng.integers(1, 12)))

        # Run
        try:
            expression = parse_expression(text)
        except ExpressionError:
            continue

        # Assert
        parsed += 1
        assert parse_expression(str(expression)) == expression, text
        try:
            assert len(expression.evaluate(frame)) == 2
        except ExpressionError:
            pass

    assert parsed > 50


# -- evaluate_record ------------------------------------------------------------------------


def test_evaluate_record__predicate_and_value():
    # Setup
    record = {'age': 4, 'education': 'Elementary', 'unused': object()}

    # Run
    violates = evaluate_record("age < 5 -> education == 'Preschool'", record)
    value = evaluate_record(parse_expression('age * 2 + 0.5'), record)
    missing = evaluate_record('isnull(education)', {'education': None})

    # Assert
    assert violates is False
    assert value == 8.5
    assert isinstance(value, float)
    assert missing is True


def test_evaluate_record__missing_key():
    # Run and Assert
    message = "Unknown column 'age' in expression 'age > 1'; known columns: 'agee'. Did you mean"
    with pytest.raises(ExpressionError, match=re.escape(message)):
        evaluate_record('age > 1', {'agee': 3})


def test_call_node__rejects_functions_outside_the_whitelist():
    # Run and Assert
    with pytest.raises(ValueError, match=re.escape("Call.name must be one of")):
        Call('open', (Literal('f'),))
